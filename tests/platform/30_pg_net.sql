-- Supabase platform stand-in (local and test only, never a migration): pg_net's
-- interface as our webhook uses it. net.http_post queues the request in
-- net.http_request_queue and returns its id, exactly as pg_net does; instead of pg_net's
-- background worker, the test harness delivers queued requests and records the answers
-- in net._http_response. Same names, columns, defaults and grants as pg_net on Supabase.
create schema net;

create domain net.http_method as text
check (value ilike 'get' or value ilike 'post' or value ilike 'delete');

create unlogged table net.http_request_queue (
    id bigserial,
    -- pg_net's column names, keywords (method, content):
    method net.http_method not null,  -- noqa: RF04
    url text not null,
    headers jsonb not null,
    body bytea,
    timeout_milliseconds integer not null
);

create unlogged table net._http_response (
    id bigint,
    status_code integer,
    content_type text,
    headers jsonb,
    content text,  -- noqa: RF04
    timed_out boolean,
    error_msg text,
    created timestamptz not null default now()
);
create index on net._http_response (created);

create function net.http_post(
    url text,
    body jsonb default '{}'::jsonb,
    params jsonb default '{}'::jsonb,
    headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
    timeout_milliseconds integer default 5000
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_content_type text;
    v_request_id bigint;
begin
    select h.value into v_content_type
    from jsonb_each_text(coalesce(headers, '{}'::jsonb)) as h (key, value)
    where lower(h.key) = 'content-type'
    limit 1;
    if v_content_type is null then
        headers := coalesce(headers, '{}'::jsonb) || '{"Content-Type": "application/json"}'::jsonb;
    elsif v_content_type <> 'application/json' then
        raise exception 'Content-Type header must be "application/json"';
    end if;
    if body is null then
        raise exception 'body must not be null';
    end if;
    -- pg_net URL-encodes params onto the URL; nothing of ours sends any.
    if params is not null and params <> '{}'::jsonb then
        raise exception 'the pg_net stand-in does not implement params'
            using errcode = 'feature_not_supported';
    end if;

    insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
    values ('POST', url, headers, convert_to(body::text, 'UTF8'), timeout_milliseconds)
    returning id into v_request_id;
    return v_request_id;
end;
$$;

-- As Supabase sets pg_net up: the API roles and postgres may call it, only postgres
-- may read its tables.
revoke all on function net.http_post(text, jsonb, jsonb, jsonb, integer) from public;
grant usage on schema net to postgres, anon, authenticated, service_role;
grant execute on function net.http_post(text, jsonb, jsonb, jsonb, integer)
to postgres, anon, authenticated, service_role;
grant all on all tables in schema net to postgres;
