-- Supabase platform stand-in (local and test only, never a migration): the roles a
-- hosted project has. 'postgres' is the migration role and, as on hosted Supabase,
-- NOT a superuser; 'supabase_admin' (the initdb user) plays the platform.
create role postgres login createrole createdb replication bypassrls;
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
create role authenticator login noinherit;
create role supabase_auth_admin nologin noinherit createrole;
-- One role per statement: sqlfluff's postgres dialect cannot parse a list of granted roles.
grant anon to authenticator;
grant authenticated to authenticator;
grant service_role to authenticator;
grant anon to postgres;
grant authenticated to postgres;
grant service_role to postgres;

-- The project database belongs to 'postgres', which therefore owns schema public.
alter database postgres owner to postgres;
grant usage on schema public to anon, authenticated, service_role;
-- The linter cannot parse "$user" in a SET list (it is what Supabase sets, as written):
alter database postgres set search_path to "$user", public, extensions;  -- noqa: PRS, RF05

-- What Supabase still grants by default on objects 'postgres' creates in public:
-- functions and sequences (tables no longer, since 2026-10-30). Our migrations must
-- revoke what they do not mean to expose.
alter default privileges for role postgres in schema public
grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on sequences to anon, authenticated, service_role;
