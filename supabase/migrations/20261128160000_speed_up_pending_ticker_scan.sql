-- A call's fixed cost must not grow with the queue, and stay small enough that callers
-- can keep their calls (transactions) short: short calls are what lets two callers run in
-- parallel, since each holds its orders' user rows until it commits.
-- 1. Tickers are found through the partial index queue_pending_ticker_fifo_idx only: each
--    probe is ordered by its full key (ticker, date, id). Ordered by ticker alone, the
--    planner could use queue_ticker_idx (every row, filtering status) and walk each
--    drained ticker's finished rows: ~50 ms per call at 100,000 orders, growing.
-- 2. Tickers are visited lazily, one probe each, from a random issuer onwards, wrapping
--    around, instead of listing every pending ticker first: a call that fills its
--    p_max_orders on the first tickers probes only those.
-- 3. has_more reads the same partial index, as a scalar subquery (EXISTS drops the ORDER
--    BY, and a plan from statistics taken while most rows were pending walked finished
--    rows: 3.5 ms per call).
-- What is processed, in what order per ticker, and the result are unchanged; which
-- tickers a call reaches first is still random.
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
    v_start text;
    v_after text;
    v_wrapped boolean := false;
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

    -- Start at a random issuer and walk the tickers with pending orders from there (a
    -- loose index scan, one probe per ticker), wrapping around once.
    select t.ticker into v_start
    from public.issuer_trading as t
    order by t.ticker
    offset floor(random() * (select count(*) from public.issuer_trading))
    limit 1;

    loop
        exit when v_start is null or v_total >= p_max_orders or clock_timestamp() >= v_deadline;
        -- Two statements, not an OR: each probe must be an index range start.
        if v_after is null then
            v_ticker := (
                select q.ticker from public.queue as q
                where q.status = 'pending' and q.ticker >= v_start
                order by q.ticker, q.date, q.id
                limit 1
            );
        else
            v_ticker := (
                select q.ticker from public.queue as q
                where q.status = 'pending' and q.ticker > v_after
                order by q.ticker, q.date, q.id
                limit 1
            );
        end if;
        if v_ticker is null then
            exit when v_wrapped;
            v_wrapped := true;
            v_after := '';
            continue;
        end if;
        exit when v_wrapped and v_ticker >= v_start;
        v_after := v_ticker;

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
        'has_more', (
            select q.ticker from public.queue as q
            where q.status = 'pending'
            order by q.ticker, q.date, q.id
            limit 1
        ) is not null,
        'duration_ms', round(extract(epoch from clock_timestamp() - v_started) * 1000, 1)
    );
end;
$$;
