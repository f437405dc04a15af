-- Supabase platform stand-in: the supautils settings that let 'postgres' run DDL on tables
-- the platform owns. supautils is not packaged for Debian, so event triggers emulate it:
-- while such a statement of 'postgres' runs, the table belongs to 'postgres'; its owner and
-- the grants the owner change rewrote are restored when the statement ends (or by the
-- rollback when it fails).
--   drop_trigger_grants: DROP TRIGGER on auth.users (CREATE TRIGGER needs only the TRIGGER
--     privilege, DROP TRIGGER needs ownership).
--   policy_grants: CREATE / ALTER / DROP POLICY on realtime.messages (Realtime
--     Authorization: projects write their own policies on it). The real setting also
--     covers COMMENT ON POLICY only on newer images, so this stand-in does not.
create table extensions.supautils_privileged_ddl (
    command_tag text primary key,
    table_name regclass not null,
    platform_owner name not null
);

create function extensions.supautils_privileged_ddl_begin()
returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_rule extensions.supautils_privileged_ddl;
begin
    select r.* into v_rule from extensions.supautils_privileged_ddl as r
    where r.command_tag = tg_tag;
    if found and session_user = 'postgres' then
        perform pg_catalog.set_config('platform.privileged_ddl_grants', coalesce((
            select pg_catalog.string_agg(
                pg_catalog.format('grant %s on %s to %I', a.privilege_type, v_rule.table_name,
                    pg_catalog.pg_get_userbyid(a.grantee)), '; '
            )
            from pg_catalog.pg_class as c
            cross join lateral pg_catalog.aclexplode(c.relacl) as a
            where c.oid = v_rule.table_name and a.grantee <> c.relowner
        ), ''), true);
        execute pg_catalog.format('alter table %s owner to postgres', v_rule.table_name);
    end if;
end;
$$;

create function extensions.supautils_privileged_ddl_end()
returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_rule extensions.supautils_privileged_ddl;
begin
    select r.* into v_rule from extensions.supautils_privileged_ddl as r
    where r.command_tag = tg_tag;
    if found and session_user = 'postgres' then
        execute pg_catalog.format('alter table %s owner to %I', v_rule.table_name,
            v_rule.platform_owner);
        execute pg_catalog.format('revoke all on %s from postgres', v_rule.table_name);
        if pg_catalog.current_setting('platform.privileged_ddl_grants', true) <> '' then
            execute pg_catalog.current_setting('platform.privileged_ddl_grants', true);
        end if;
    end if;
end;
$$;

-- The linter's postgres dialect has no grammar for CREATE EVENT TRIGGER, hence the noqa.
create event trigger supautils_privileged_ddl_begin on ddl_command_start  -- noqa: PRS
when tag in ('DROP TRIGGER', 'CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
execute function extensions.supautils_privileged_ddl_begin();

create event trigger supautils_privileged_ddl_end on ddl_command_end  -- noqa: PRS
when tag in ('DROP TRIGGER', 'CREATE POLICY', 'ALTER POLICY', 'DROP POLICY')
execute function extensions.supautils_privileged_ddl_end();

revoke all on function extensions.supautils_privileged_ddl_begin() from public;
revoke all on function extensions.supautils_privileged_ddl_end() from public;
revoke all on extensions.supautils_privileged_ddl from public;

insert into extensions.supautils_privileged_ddl (command_tag, table_name, platform_owner)
values ('DROP TRIGGER', 'auth.users', 'supabase_auth_admin');
-- The policy rows are added by 45_realtime.sql, once realtime.messages exists.
