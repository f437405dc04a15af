-- Order processing: executes pending orders against the curve, FIFO per ticker, any
-- number of callers at once. A caller owns a ticker through its advisory lock, taken
-- without waiting, so callers spread over tickers; an order's effects commit together.

-- What processing one order came to; one row per order finished.
create type pauv.order_outcome as (
    order_id bigint,
    order_type text,
    status text,
    pv_amount numeric,
    usdp_amount numeric,
    transaction_id bigint,
    error text
);

comment on type pauv.order_outcome is
'One finished order: completed (tokens, USDP and the trade) or failed (the error).';

-- Writes one batch of executed orders set-based: balances, holdings, trades, price
-- ticks and queue statuses. Slot i of every array describes the batch's i-th order; a
-- user appears at most once per batch.
create function pauv.write_order_batch(
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

-- Executes up to p_max_orders pending orders of one ticker in (date, id) order. The
-- caller must hold the ticker's advisory lock. Per order it does one locking read; the
-- writes go out set-based per batch, a batch ending before a user's second order so the
-- read always sees that user's earlier trades. Stops early at p_deadline, or when an
-- order's user row is locked by another caller (waiting could deadlock; the order stays
-- first in line for the next call).
create function pauv.process_ticker_orders(
    p_ticker text,
    p_max_orders integer,
    p_deadline timestamptz,
    p_now timestamptz
)
returns setof pauv.order_outcome
language plpgsql
set search_path = ''
-- Every statement here is a point lookup or a keyed write. Statistics taken while a
-- table was nearly empty (a new market) would otherwise let the cached generic plan
-- scan portfolio sequentially once per order, and a drain would slow as it grows.
set enable_seqscan = off
as $$
declare
    v_base numeric;
    v_step numeric;
    v_supply numeric;
    v_pool numeric;
    v_start_supply numeric;
    v_order record;
    v_balance numeric;
    v_held numeric;
    v_basis numeric;
    v_price numeric;
    v_pv numeric;
    v_usdp numeric;
    v_error text;
    v_n integer := 0;
    -- The batch, one slot per order: what to write once it ends.
    v_ids bigint[] := '{}';
    v_types text[] := '{}';
    v_users uuid[] := '{}';
    v_statuses text[] := '{}';
    v_errors text[] := '{}';
    v_pvs numeric[] := '{}';
    v_usdps numeric[] := '{}';
    v_start_prices numeric[] := '{}';
    v_supplies numeric[] := '{}';
    v_balance_deltas numeric[] := '{}';
    v_new_holdings numeric[] := '{}';
    v_new_bases numeric[] := '{}';
begin
    select t.base_price, t.price_step, t.current_supply, t.total_usdp
    into v_base, v_step, v_supply, v_pool
    from public.issuer_trading as t
    where t.ticker = p_ticker
    for no key update;
    v_start_supply := v_supply;

    for v_order in
        select q.id, q.user_id, q.order_type, q.amount_usdp, q.amount_pv
        from public.queue as q
        where q.ticker = p_ticker and q.status = 'pending'
        order by q.date, q.id
        limit p_max_orders
        for update
    loop
        exit when clock_timestamp() >= p_deadline;

        if v_order.user_id = any(v_users) or v_n >= 500 then
            return query select * from pauv.write_order_batch(
                p_ticker, p_now, v_ids, v_types, v_users, v_statuses, v_errors, v_pvs, v_usdps,
                v_start_prices, v_supplies, v_balance_deltas, v_new_holdings, v_new_bases
            );
            v_n := 0;
            v_ids := '{}'; v_types := '{}'; v_users := '{}'; v_statuses := '{}';
            v_errors := '{}'; v_pvs := '{}'; v_usdps := '{}'; v_start_prices := '{}';
            v_supplies := '{}'; v_balance_deltas := '{}';
            v_new_holdings := '{}'; v_new_bases := '{}';
        end if;

        select u.usdp_balance, p.pv_amount, p.avg_cost_basis into v_balance, v_held, v_basis
        from public.users as u
        left join public.portfolio as p on p.user_id = u.user_id and p.ticker = p_ticker
        where u.user_id = v_order.user_id
        for no key update of u skip locked;
        exit when not found;
        v_held := coalesce(v_held, 0);
        v_basis := coalesce(v_basis, 0);

        v_price := v_base + v_step * v_supply;
        v_error := null;
        if v_order.order_type = 'buy' then
            v_usdp := v_order.amount_usdp;
            if v_usdp < 0.01 or v_usdp > 1000000 then
                v_error := format('amount must be between 0.01 and 1000000 USDP, got %s', v_usdp);
            elsif v_balance < v_usdp then
                v_error := format('insufficient balance: %s USDP available, %s needed', v_balance, v_usdp);
            else
                v_pv := pauv.buy_quantity(v_price, v_step, v_usdp);
                if v_pv = 0 then
                    v_error := format('amount too small: %s USDP buys less than 0.00000001 PV', v_usdp);
                end if;
            end if;
        else
            v_pv := v_order.amount_pv;
            if v_pv < 0.01 or v_pv > 1000000 then
                v_error := format('amount must be between 0.01 and 1000000 PV, got %s', v_pv);
            elsif v_held < v_pv then
                v_error := format('insufficient holdings: %s PV held, %s to sell', v_held, v_pv);
            else
                v_usdp := pauv.sell_payout(v_price, v_step, v_pv);
                if v_usdp = 0 then
                    v_error := format('amount too small: selling %s PV pays less than 0.000001 USDP', v_pv);
                end if;
            end if;
        end if;

        -- Every slot is written for every order (null where it does not apply), so
        -- all arrays stay aligned from subscript 1.
        v_n := v_n + 1;
        v_ids[v_n] := v_order.id;
        v_types[v_n] := v_order.order_type;
        v_users[v_n] := v_order.user_id;
        v_errors[v_n] := v_error;
        if v_error is not null then
            v_statuses[v_n] := 'failed';
            v_pv := null;
            v_usdp := null;
        else
            v_statuses[v_n] := 'completed';
            if v_order.order_type = 'buy' then
                v_supply := v_supply + v_pv;
                v_pool := v_pool + v_usdp;
            else
                v_supply := v_supply - v_pv;
                v_pool := v_pool - v_usdp;
            end if;
        end if;
        v_pvs[v_n] := v_pv;
        v_usdps[v_n] := v_usdp;
        v_start_prices[v_n] := case when v_error is null then v_price end;
        v_supplies[v_n] := case when v_error is null then v_supply end;
        v_balance_deltas[v_n] := case
            when v_error is not null then null
            when v_order.order_type = 'buy' then -v_usdp
            else v_usdp
        end;
        v_new_holdings[v_n] := case
            when v_error is not null then null
            when v_order.order_type = 'buy' then v_held + v_pv
            else v_held - v_pv
        end;
        v_new_bases[v_n] := case
            when v_error is not null then null
            when v_order.order_type = 'buy' then round((v_held * v_basis + v_usdp) / (v_held + v_pv), 12)
            when v_held = v_pv then 0
            else v_basis
        end;
    end loop;

    if v_n > 0 then
        return query select * from pauv.write_order_batch(
            p_ticker, p_now, v_ids, v_types, v_users, v_statuses, v_errors, v_pvs, v_usdps,
            v_start_prices, v_supplies, v_balance_deltas, v_new_holdings, v_new_bases
        );
    end if;

    if v_supply is distinct from v_start_supply then
        update public.issuer_trading as t
        set current_supply = v_supply, total_usdp = v_pool
        where t.ticker = p_ticker;
    end if;
end;
$$;

comment on function pauv.process_ticker_orders(text, integer, timestamptz, timestamptz) is
'Executes pending orders of one ticker in FIFO order; the caller holds the ticker''s '
'advisory lock. Returns one row per order it finished (completed or failed).';

-- A call's fixed cost must not grow with the queue and must stay small, so callers keep
-- their calls (transactions) short; short calls are what lets callers run in parallel,
-- since each holds its orders' user rows until it commits. Tickers with pending orders
-- are found through the partial index queue_pending_ticker_fifo_idx only, each probe
-- ordered by its full key (ticker, date, id) so the planner cannot walk finished rows;
-- they are visited lazily from a random issuer, wrapping around once, so a call that
-- fills p_max_orders on its first tickers probes only those.
create function public.process_all_pending_orders(
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

comment on function public.process_all_pending_orders(integer, numeric, timestamptz) is
'Service role only: executes pending orders, FIFO per ticker, until none is left, '
'p_max_orders are done or p_max_seconds have passed; safe to run from many callers at '
'once. Returns {total_processed, successful, failed, has_more, duration_ms}; callers loop '
'while has_more. p_now stamps the trades (tests and the demo pass a time).';

create function public.process_next_queue_order(p_now timestamptz default now())
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_ticker text;
    v_row record;
begin
    -- The oldest pending order whose ticker no other caller is working on.
    for v_ticker in
        select q.ticker from public.queue as q
        where q.status = 'pending'
        order by q.date, q.id
        limit 1000
    loop
        exit when pg_catalog.pg_try_advisory_xact_lock(1885435254, pauv.ticker_lock_id(v_ticker));
        v_ticker := null;
    end loop;
    if v_ticker is null then
        return jsonb_build_object('processed', false, 'reason', 'no pending order');
    end if;

    select * into v_row from pauv.process_ticker_orders(v_ticker, 1, 'infinity', p_now);
    if not found then
        return jsonb_build_object('processed', false, 'reason', 'order''s user is busy, retry');
    end if;
    return jsonb_build_object(
        'processed', true,
        'order_id', v_row.order_id,
        'order_type', v_row.order_type,
        'status', v_row.status,
        'pv_amount', v_row.pv_amount,
        'usdp_amount', v_row.usdp_amount,
        'transaction_id', v_row.transaction_id,
        'error', v_row.error
    );
end;
$$;

comment on function public.process_next_queue_order(timestamptz) is
'Service role only: executes the oldest pending order (of a ticker no other caller is '
'working on). Returns {processed, order_id, order_type, status, pv_amount, usdp_amount, '
'transaction_id, error}; {processed: false} when nothing is pending.';

grant execute on function pauv.buy_quantity(numeric, numeric, numeric) to service_role;
grant execute on function pauv.sell_payout(numeric, numeric, numeric) to service_role;
grant execute on function pauv.process_ticker_orders(text, integer, timestamptz, timestamptz)
to service_role;
grant execute on function pauv.write_order_batch(
    text, timestamptz, bigint[], text[], uuid[], text[], text[], numeric[], numeric[], numeric[],
    numeric[], numeric[], numeric[], numeric[]
) to service_role;
grant execute on function public.process_all_pending_orders(integer, numeric, timestamptz)
to service_role;
grant execute on function public.process_next_queue_order(timestamptz) to service_role;
