-- Schema 'pauv' holds the market's internals: it is not exposed through the API, so
-- SECURITY DEFINER functions and private tables live here, never in public.
create schema if not exists pauv;

comment on schema pauv is
'Pauv market internals: not exposed through the Data API. SECURITY DEFINER functions, '
'private tables and helpers live here; public holds only what the app reads.';

revoke all on schema pauv from public;

alter default privileges for role postgres in schema pauv
revoke execute on functions from public, anon, authenticated, service_role;

create function pauv.set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    new.updated_at := now();
    return new;
end;
$$;

comment on function pauv.set_updated_at() is
'BEFORE UPDATE trigger: keeps updated_at true whoever writes the row.';
