-- What an adopted Pauv database keeps of the app's own functions must not stay a hole:
-- every function in public gets a fixed search_path, and the ones that grant privileges or
-- write the security log are for the service role only. (A fresh project has none of them.)
do $$
declare
    v_function regprocedure;
begin
    for v_function in
        select f.oid::regprocedure
        from pg_catalog.pg_proc as f
        where f.pronamespace = 'public'::regnamespace
            and f.proowner = (select r.oid from pg_catalog.pg_roles as r where r.rolname = current_user)
            and not exists (
                select from pg_catalog.unnest(f.proconfig) as c (setting)
                where c.setting like 'search_path=%'
            )
    loop
        -- The app's functions name their tables without a schema: public, then pg_temp last
        -- so a temporary object can never stand in for one of them.
        execute pg_catalog.format('alter function %s set search_path = public, pg_temp', v_function);
    end loop;

    for v_function in
        select f.oid::regprocedure
        from pg_catalog.pg_proc as f
        where f.pronamespace = 'public'::regnamespace
            and f.proname in ('set_admin_claim', 'log_audit_entry')
    loop
        execute pg_catalog.format('revoke execute on function %s from public, anon, authenticated',
            v_function);
        execute pg_catalog.format('grant execute on function %s to service_role', v_function);
    end loop;
end;
$$;
