-- Finding the tickers with pending orders must cost the same however many finished rows
-- the queue keeps. The loose index scan ordered by ticker alone, which the planner may
-- serve from queue_ticker_idx (every row, filtering status) and then walk each drained
-- ticker's finished rows: about 50 ms per call on 100 tickers after 50,000 orders, and
-- growing with the queue. Ordering each probe by the full key of the partial index
-- queue_pending_ticker_fifo_idx (ticker, date, id) makes that index the only cheap plan.
-- Behaviour is unchanged: the same tickers are returned.
create or replace function public.process_all_pending_orders(
    p_max_orders integer default 1000,
    p_max_seconds numeric default 5,
    p_now timestamptz default now()
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_started timestamptz := clock_timestamp();
    v_deadline timestamptz;
    v_tickers text[];
    v_ticker text;
    v_total integer := 0;
    v_ok integer := 0;
    v_failed integer := 0;
    v_row record;
begin
    if p_max_orders is null or p_max_orders < 1 or p_max_orders > 100000 then
        raise exception 'p_max_orders must be between 1 and 100000, got %', p_max_orders
            using errcode = 'invalid_parameter_value';
    end if;
    if p_max_seconds is null or not (p_max_seconds > 0 and p_max_seconds <= 50) then
        raise exception 'p_max_seconds must be greater than 0 and at most 50, got %', p_max_seconds
            using errcode = 'invalid_parameter_value';
    end if;
    v_deadline := v_started + p_max_seconds * interval '1 second';

    -- Tickers with pending work: a loose index scan of queue_pending_ticker_fifo_idx, one
    -- probe per distinct ticker.
    with recursive pending_tickers as (
        (
            select q.ticker from public.queue as q
            where q.status = 'pending'
            order by q.ticker, q.date, q.id
            limit 1
        )
        union all
        select (
            select q.ticker from public.queue as q
            where q.status = 'pending' and q.ticker > pt.ticker
            order by q.ticker, q.date, q.id
            limit 1
        )
        from pending_tickers as pt
        where pt.ticker is not null
    )
    select coalesce(array_agg(pt.ticker order by random()), '{}') into v_tickers
    from pending_tickers as pt
    where pt.ticker is not null;

    foreach v_ticker in array v_tickers loop
        exit when v_total >= p_max_orders or clock_timestamp() >= v_deadline;
        -- Own the ticker unless another caller works on it or an order is being
        -- inserted for it right now; then leave it for the next call.
        continue when not pg_catalog.pg_try_advisory_xact_lock(
            1885435254, pauv.ticker_lock_id(v_ticker)
        );

        for v_row in
            select * from pauv.process_ticker_orders(v_ticker, p_max_orders - v_total, v_deadline, p_now)
        loop
            v_total := v_total + 1;
            if v_row.status = 'completed' then
                v_ok := v_ok + 1;
            else
                v_failed := v_failed + 1;
            end if;
        end loop;
    end loop;

    return jsonb_build_object(
        'total_processed', v_total,
        'successful', v_ok,
        'failed', v_failed,
        'has_more', exists (select 1 from public.queue as q where q.status = 'pending'),
        'duration_ms', round(extract(epoch from clock_timestamp() - v_started) * 1000, 1)
    );
end;
$$;
