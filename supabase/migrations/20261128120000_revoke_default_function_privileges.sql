-- Functions are executable by PUBLIC (and, on Supabase, granted to the API roles) unless
-- revoked. Make every function we create private by default; each migration then grants
-- execute explicitly to exactly the roles meant to call it.
alter default privileges for role postgres in schema public
revoke execute on functions from public, anon, authenticated, service_role;

alter default privileges for role postgres
revoke execute on functions from public;
