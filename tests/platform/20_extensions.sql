-- Supabase platform stand-in: the 'extensions' schema, and the extensions the platform
-- (a superuser) creates: pg_cron with the grants Supabase gives 'postgres', pgTAP for
-- the database tests, plpgsql_check for the lint test.
create schema extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant all on schema extensions to postgres;

-- In pg_catalog, as Supabase installs it: an extension in public is a linter finding (0014).
create extension pg_cron with schema pg_catalog;
grant usage on schema cron to postgres with grant option;
grant all on all tables in schema cron to postgres with grant option;
grant all on all sequences in schema cron to postgres with grant option;
grant execute on all functions in schema cron to postgres;

create extension pgtap with schema extensions;
create extension plpgsql_check with schema extensions;
