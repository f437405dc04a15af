-- Supabase platform stand-in: supautils' `drop_trigger_grants`. On hosted Supabase the
-- supautils extension lets 'postgres' drop triggers it created on tables it does not own,
-- auth.users among them (CREATE TRIGGER needs only the TRIGGER privilege, DROP TRIGGER
-- needs ownership). supautils is not packaged for Debian, so an event trigger emulates it:
-- while a DROP TRIGGER statement of 'postgres' runs, auth.users belongs to 'postgres'; its
-- owner and the grants the owner change rewrote are restored when the statement ends (or
-- by the rollback when it fails).
create function extensions.drop_trigger_grants_begin()
returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if tg_tag = 'DROP TRIGGER' and session_user = 'postgres' then
        perform pg_catalog.set_config('platform.auth_users_grants', coalesce((
            select pg_catalog.string_agg(
                pg_catalog.format('grant %s on auth.users to %I', a.privilege_type,
                    pg_catalog.pg_get_userbyid(a.grantee)), '; '
            )
            from pg_catalog.pg_class as c
            cross join lateral pg_catalog.aclexplode(c.relacl) as a
            where c.oid = 'auth.users'::regclass and a.grantee <> c.relowner
        ), ''), true);
        alter table auth.users owner to postgres;
    end if;
end;
$$;

create function extensions.drop_trigger_grants_end()
returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if tg_tag = 'DROP TRIGGER' and session_user = 'postgres' then
        alter table auth.users owner to supabase_auth_admin;
        revoke all on auth.users from postgres;
        if pg_catalog.current_setting('platform.auth_users_grants', true) <> '' then
            execute pg_catalog.current_setting('platform.auth_users_grants', true);
        end if;
    end if;
end;
$$;

-- The linter's postgres dialect has no grammar for CREATE EVENT TRIGGER, hence the noqa.
create event trigger supautils_drop_trigger_grants_begin on ddl_command_start  -- noqa: PRS
when tag in ('DROP TRIGGER')
execute function extensions.drop_trigger_grants_begin();

create event trigger supautils_drop_trigger_grants_end on ddl_command_end  -- noqa: PRS
when tag in ('DROP TRIGGER')
execute function extensions.drop_trigger_grants_end();

revoke all on function extensions.drop_trigger_grants_begin() from public;
revoke all on function extensions.drop_trigger_grants_end() from public;
