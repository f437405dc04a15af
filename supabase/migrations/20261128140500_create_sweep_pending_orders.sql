-- The sweeper behind the job process-pending-orders-sweeper: every minute it drains orders
-- the webhook missed (edge function down, pg_net request lost), so no order waits for long.
-- It calls the order processor batch after batch, committing after each.

-- A procedure so it can commit between batches: no SET clause (PostgreSQL forbids
-- transaction control then), every name is schema-qualified instead. The processor is
-- called dynamically so this migration does not depend on the order-matching migrations.
create procedure pauv.sweep_pending_orders(p_max_seconds numeric default 50)
language plpgsql
as $$
declare
    v_deadline timestamptz;
    v_result jsonb;
    v_calls integer := 0;
    v_processed bigint := 0;
    v_failed bigint := 0;
begin
    if p_max_seconds is null or p_max_seconds < 1 or p_max_seconds > 3600 then
        raise exception 'p_max_seconds must be from 1 to 3600, got %',
            coalesce(p_max_seconds::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if not exists (
        select
        from pg_catalog.pg_proc as p
        where
            p.pronamespace = 'public'::regnamespace
            and p.proname = 'process_all_pending_orders'
    ) then
        raise exception 'public.process_all_pending_orders() does not exist'
            using
                errcode = 'undefined_function',
                hint = 'Push the order-matching migrations (supabase db push).';
    end if;
    v_deadline := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => p_max_seconds);

    loop
        -- Built with format() so static checkers do not resolve a function that may not
        -- exist yet when this migration is applied; named arguments, so any signature with
        -- these two parameters (and defaults for the rest) is called the same way.
        execute pg_catalog.format(
            'select %I.%I(p_max_orders => $1, p_max_seconds => $2)',
            'public', 'process_all_pending_orders'
        )
        into v_result
        using
            1000,
            least(5, greatest(1, extract(epoch from v_deadline - pg_catalog.clock_timestamp())));
        commit;
        v_calls := v_calls + 1;
        v_processed := v_processed + coalesce((v_result ->> 'total_processed')::bigint, 0);
        v_failed := v_failed + coalesce((v_result ->> 'failed')::bigint, 0);
        exit when not coalesce((v_result ->> 'has_more')::boolean, false)
            or pg_catalog.clock_timestamp() >= v_deadline;
    end loop;
    raise notice 'process-pending-orders-sweeper: % orders processed (% failed) in % calls',
        v_processed, v_failed, v_calls;
end;
$$;

comment on procedure pauv.sweep_pending_orders is
'Job process-pending-orders-sweeper (every minute): calls '
'public.process_all_pending_orders(p_max_orders => 1000, p_max_seconds => at most 5) and '
'commits, again while it reports has_more, for at most p_max_seconds (50, so runs do not '
'pile up). Run it outside a transaction block: call pauv.sweep_pending_orders();';

grant execute on procedure pauv.sweep_pending_orders to service_role;
