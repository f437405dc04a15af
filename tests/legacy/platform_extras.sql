-- Supabase platform stand-in, part two (test fixture only, never a migration): what a
-- hosted project also has and Pauv's legacy schema relies on. Run as supabase_admin after
-- tests/platform/*.sql: Storage's two tables, the Realtime publication, and the Dashboard
-- webhooks' trigger function (recording calls instead of sending HTTP requests).

-- Storage ---------------------------------------------------------------------------------
-- The storage API's owner role; 'postgres' is a member, as on hosted projects, so the
-- project's migrations may create buckets and policies on storage.objects.
create role supabase_storage_admin nologin noinherit createrole;
grant supabase_storage_admin to postgres;

create schema storage authorization supabase_storage_admin;
grant usage on schema storage to postgres, anon, authenticated, service_role;

create table storage.buckets (
    id text primary key,
    name text not null,
    owner uuid,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    public boolean default false,
    avif_autodetection boolean default false,
    file_size_limit bigint,
    allowed_mime_types text [],
    owner_id text
);
create unique index bname on storage.buckets (name);

create table storage.objects (
    id uuid primary key default gen_random_uuid(),
    bucket_id text references storage.buckets (id),
    name text,
    owner uuid,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    last_accessed_at timestamptz default now(),
    metadata jsonb,
    path_tokens text [] generated always as (string_to_array(name, '/')) stored,
    version text,
    owner_id text,
    user_metadata jsonb
);
create unique index bucketid_objname on storage.objects (bucket_id, name);

alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
grant all on storage.buckets, storage.objects
to postgres, anon, authenticated, service_role;

-- Database webhooks -------------------------------------------------------------------------
-- Supabase's supabase_functions.http_request(url, method, headers, body, timeout_ms)
-- trigger function, as Dashboard webhooks call it. This stand-in never touches the
-- network: it records each call (with the row that fired it) so a test can count them.
create role supabase_functions_admin nologin noinherit;
create schema supabase_functions authorization supabase_functions_admin;
grant usage on schema supabase_functions to postgres, anon, authenticated, service_role;

create table supabase_functions.hooks (
    id bigserial primary key,
    hook_table_id integer not null,
    hook_name text not null,
    created_at timestamptz not null default now(),
    request_id bigint
);
comment on table supabase_functions.hooks is
'Supabase''s webhook audit: one row per http_request() call (stand-in: request_id is the call id).';

create table supabase_functions.http_request_calls (
    id bigserial primary key,
    table_schema text not null,
    table_name text not null,
    trigger_name text not null,
    operation text not null,
    url text not null,
    method text not null,
    headers jsonb not null,
    params jsonb not null,
    timeout_ms integer not null,
    record jsonb,
    created_at timestamptz not null default clock_timestamp()
);
comment on table supabase_functions.http_request_calls is
'Stand-in only: every call of supabase_functions.http_request() with its arguments and row.';

create function supabase_functions.http_request()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_call_id bigint;
begin
    if tg_nargs < 5 then
        raise exception 'http_request needs url, method, headers, params and timeout_ms'
            using errcode = 'invalid_parameter_value';
    end if;
    if upper(tg_argv[1]) not in ('GET', 'POST') then
        raise exception 'method argument % is invalid', tg_argv[1]
            using errcode = 'invalid_parameter_value';
    end if;
    insert into supabase_functions.http_request_calls (
        table_schema, table_name, trigger_name, operation, url, method, headers, params,
        timeout_ms, record
    )
    values (
        tg_table_schema, tg_table_name, tg_name, tg_op, tg_argv[0], upper(tg_argv[1]),
        coalesce(tg_argv[2], '{}')::jsonb, coalesce(tg_argv[3], '{}')::jsonb,
        tg_argv[4]::integer,
        case when tg_op = 'DELETE' then to_jsonb(old) else to_jsonb(new) end
    )
    returning id into v_call_id;
    insert into supabase_functions.hooks (hook_table_id, hook_name, request_id)
    values (tg_relid, tg_name, v_call_id);
    return new;
end;
$$;
alter function supabase_functions.http_request() owner to supabase_functions_admin;
alter table supabase_functions.hooks owner to supabase_functions_admin;
alter table supabase_functions.http_request_calls owner to supabase_functions_admin;
revoke all on function supabase_functions.http_request() from public;
grant execute on function supabase_functions.http_request()
to postgres, anon, authenticated, service_role;
grant select on supabase_functions.hooks, supabase_functions.http_request_calls to postgres;
