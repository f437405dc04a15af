-- The Pauv app's own queue processor calls process_order_batch(p_batch_size): keep it, as a
-- thin call into the exact, concurrent-safe engine, with the app's result keys.
create function public.process_order_batch(p_batch_size integer default 50)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    -- The engine stamps processed_at with p_now: a per-call time names this call's orders.
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_run jsonb;
begin
    if p_batch_size is null or p_batch_size < 1 or p_batch_size > 10000 then
        raise exception 'p_batch_size must be between 1 and 10000, got %', p_batch_size
            using errcode = 'invalid_parameter_value';
    end if;
    v_run := public.process_all_pending_orders(
        p_max_orders => p_batch_size, p_max_seconds => 5, p_now => v_now
    );
    return pg_catalog.jsonb_build_object(
        'processed', (v_run ->> 'total_processed')::integer,
        'successful', (v_run ->> 'successful')::integer,
        'failed', (v_run ->> 'failed')::integer,
        'has_more', (v_run ->> 'has_more')::boolean,
        'results', coalesce((
            select pg_catalog.jsonb_agg(
                pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                    'order_id', q.id,
                    'success', q.status = 'completed',
                    'transaction_id', x.id,
                    'tokens_received', case when q.order_type = 'buy' then x.pv_traded end,
                    'usdp_received', case when q.order_type = 'sell' then x.amount_usdp end,
                    'error', q.error_message
                ))
                order by q.date, q.id
            )
            from public.queue as q
            left join public.transactions as x on x.queue_id = q.id
            where q.processed_at = v_now and q.status in ('completed', 'failed')
        ), '[]'::jsonb)
    );
end;
$$;

comment on function public.process_order_batch(integer) is
'Service role only (the app''s queue processor): executes up to p_batch_size pending orders '
'with the package''s engine (FIFO per ticker, exact) and returns {processed, successful, '
'failed, has_more, results: [{order_id, success, transaction_id, tokens_received | '
'usdp_received, error}]}.';

grant execute on function public.process_order_batch(integer) to service_role;
