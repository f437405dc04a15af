-- The platform's default privileges give anon, authenticated and service_role USAGE, SELECT
-- and UPDATE on every sequence created in public. Identity columns need none of them, and
-- UPDATE allows setval(): any API role could exhaust public.queue_id_seq and stop every
-- order. Revoke them from the sequences that exist and from those created later.
revoke all on all sequences in schema public from anon, authenticated, service_role;

alter default privileges for role postgres in schema public
revoke all on sequences from anon, authenticated, service_role;
