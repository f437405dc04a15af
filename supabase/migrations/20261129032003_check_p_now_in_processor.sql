-- p_now is checked by the processor's entry points (issue 11 item 6): NULL gave 23502 deep
-- inside, and infinity or year 1900 / 3000 stamped trades that cleanup, stats and candles
-- never see. One day back lets the demo replay its simulated hours; one hour ahead allows
-- clock skew. pauv.process_ticker_orders and public.process_next_queue_order check it too, in
-- the migrations that redefine them for issue 11 items 1 and 10.

create or replace function pauv.write_order_batch(
    p_ticker text,
    p_now timestamptz,
    p_ids bigint[],
    p_types text[],
    p_users uuid[],
    p_statuses text[],
    p_errors text[],
    p_pvs numeric[],
    p_usdps numeric[],
    p_start_prices numeric[],
    p_supplies numeric[],
    p_balance_deltas numeric[],
    p_new_holdings numeric[],
    p_new_bases numeric[]
)
returns setof pauv.order_outcome
language plpgsql
set search_path = ''
as $$
declare
    v_traded_orders bigint[];
    v_trade_ids bigint[];
begin
    perform pauv.checked_now(p_now, interval '1 day', interval '1 hour');

    update public.users as u
    set usdp_balance = u.usdp_balance + b.delta
    from unnest(p_users, p_balance_deltas) as b (user_id, delta)
    where u.user_id = b.user_id and b.delta is not null;

    insert into public.portfolio as p (user_id, ticker, pv_amount, avg_cost_basis)
    select h.user_id, p_ticker, h.pv, h.basis
    from unnest(p_users, p_new_holdings, p_new_bases) as h (user_id, pv, basis)
    where h.pv is not null
    on conflict (user_id, ticker) do update
    set pv_amount = excluded.pv_amount, avg_cost_basis = excluded.avg_cost_basis;

    -- Trades in execution order (their ids then follow FIFO), each with its price tick.
    with trade as (
        insert into public.transactions (
            user_id, amount_usdp, ticker, order_type, avg_price_paid, pv_traded,
            start_price, end_price, date, queue_id
        )
        select
            x.user_id, x.usdp, p_ticker, x.order_type, round(x.usdp / x.pv, 12), x.pv,
            x.start_price, t.base_price + t.price_step * x.supply, p_now, x.id
        from unnest(p_users, p_usdps, p_types, p_pvs, p_start_prices, p_supplies, p_ids)
            with ordinality as x (user_id, usdp, order_type, pv, start_price, supply, id, slot)
        cross join public.issuer_trading as t
        where t.ticker = p_ticker and x.pv is not null
        order by x.slot
        returning id, queue_id, end_price, pv_traded
    ),

    tick as (
        insert into public.price_history (ticker, price, supply, timestamp, transaction_id)
        select p_ticker, trade.end_price, x.supply, p_now, trade.id
        from trade
        inner join unnest(p_ids, p_supplies) as x (id, supply) on x.id = trade.queue_id
        order by trade.id
    )

    select array_agg(trade.queue_id), array_agg(trade.id) into v_traded_orders, v_trade_ids
    from trade;

    update public.queue as q
    set status = s.status, error_message = s.error, processed_at = p_now
    from unnest(p_ids, p_statuses, p_errors) as s (id, status, error)
    where q.id = s.id;

    return query
    select o.id, o.order_type, o.status, o.pv, o.usdp, tr.trade_id, o.error
    from unnest(p_ids, p_types, p_statuses, p_pvs, p_usdps, p_errors)
        with ordinality as o (id, order_type, status, pv, usdp, error, slot)
    left join unnest(v_traded_orders, v_trade_ids) as tr (order_id, trade_id) on tr.order_id = o.id
    order by o.slot;
end;
$$;

comment on function pauv.write_order_batch(
    text, timestamptz, bigint[], text[], uuid[], text[], text[], numeric[], numeric[], numeric[],
    numeric[], numeric[], numeric[], numeric[]
) is
'Writes a batch of orders executed by pauv.process_ticker_orders, set-based.';

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
    perform pauv.checked_now(p_now, interval '1 day', interval '1 hour');
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

comment on function public.process_all_pending_orders(integer, numeric, timestamptz) is
'Service role only: executes pending orders, FIFO per ticker, until none is left, '
'p_max_orders are done or p_max_seconds have passed; safe to run from many callers at '
'once. Returns {total_processed, successful, failed, has_more, duration_ms}; callers loop '
'while has_more. p_now stamps the trades (tests and the demo pass a time): a finite time '
'from 1 day before to 1 hour after now(), else 22023.';
