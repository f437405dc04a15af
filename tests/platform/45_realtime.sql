-- Supabase platform stand-in (local and test only, never a migration): the database side
-- of Supabase Realtime as a project sees it.
--   * publication supabase_realtime: exists and is empty on every project; the project
--     adds the tables whose changes Realtime streams (Postgres Changes), reading the WAL
--     with the wal2json decoder.
--   * realtime.messages / realtime.send() / realtime.topic(): Broadcast from the database.
--     send() inserts a message; Realtime reads the inserts from the WAL and delivers each
--     to the subscribers of its topic whom the RLS policies on realtime.messages let read
--     it (it checks a subscriber by reading the table as that user, realtime.topic() set).
-- Same names, columns, owners and grants as on Supabase; the real table is partitioned by
-- day (and pruned after 3 days), which nothing here depends on.
create role supabase_realtime_admin nologin noinherit;

create schema realtime;
grant usage on schema realtime to postgres, anon, authenticated, service_role;

create table realtime.messages (
    topic text not null,
    extension text not null,  -- noqa: RF04
    payload jsonb,
    event text,  -- noqa: RF04
    private boolean default false,
    updated_at timestamp without time zone not null default now(),
    inserted_at timestamp without time zone not null default now(),
    id uuid not null default gen_random_uuid(),
    primary key (id, inserted_at)
);
create index messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic)
where extension = 'broadcast' and private is true;
alter table realtime.messages owner to supabase_realtime_admin;
alter table realtime.messages enable row level security;
grant all on realtime.messages to postgres;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;

-- The topic of the channel being authorised (Realtime sets it before it reads).
create function realtime.topic()
returns text
language sql
stable
as $$
    select nullif(current_setting('realtime.topic', true), '')::text
$$;

-- As on Supabase: SECURITY INVOKER (the caller needs INSERT on realtime.messages), and a
-- failure is a warning, never the caller's error.
create function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
begin
    begin
        perform set_config('realtime.topic', topic, true);
        insert into realtime.messages (payload, event, topic, private, extension)
        values (payload, event, topic, private, 'broadcast');
    exception
        when others then
            raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
    end;
end;
$$;

create publication supabase_realtime;
alter publication supabase_realtime owner to postgres;

-- supautils policy_grants (25_supautils_privileged_ddl.sql): 'postgres' writes the
-- Realtime Authorization policies on a table it does not own.
insert into extensions.supautils_privileged_ddl (command_tag, table_name, platform_owner)
values
('CREATE POLICY', 'realtime.messages', 'supabase_realtime_admin'),
('ALTER POLICY', 'realtime.messages', 'supabase_realtime_admin'),
('DROP POLICY', 'realtime.messages', 'supabase_realtime_admin');
