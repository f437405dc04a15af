-- The order processor fetches each run in slices: 16 orders, then up to 64, 256 and 1,000 in
-- all, each slice locked and its users locked as it is reached, and the run still written as
-- one set. A run used to fetch and lock all its (up to 1,000) orders first; with two callers
-- a run mostly stops within its first few dozen orders, at a user the other caller holds, and
-- that fetch was 2.8 s of a 10 s two-caller drain (issue 15). Now such a run holds at most
-- one slice it will not use, and a cancel of an order beyond it does not wait for the call.
-- One caller (runs of 1,000) pays three more small statements per run: within the machine's
-- spread. Whole body restated from 20261129134120; nothing else changed.

create or replace function pauv.process_ticker_orders(
    p_ticker text,
    p_max_orders integer,
    p_deadline timestamptz,
    p_now timestamptz
)
returns setof pauv.order_outcome
language plpgsql
set search_path = ''
-- Every statement here is a keyed lookup or a keyed write. Statistics taken while a
-- table was nearly empty (a new market) would otherwise let the cached generic plan
-- scan portfolio sequentially, and a drain would slow as it grows.
set enable_seqscan = off
-- Runs differ in size (1 to 1,000 orders), so the average custom plan looked cheaper than
-- the generic one and every statement of every run was planned again (about 1 ms for the
-- trades statement). Keyed lookups and writes have one right plan: plan them once.
set plan_cache_mode = force_generic_plan
as $$
declare
    -- A run is up to 1,000 orders (fewer when the call's budget is smaller).
    v_limit integer;
    -- Every order of the ticker dated before it was visible when it was taken (see
    -- pauv.ticker_intake_horizon); a run reads only those.
    v_horizon timestamptz;
    -- The last order a run of this call executed: the next run reads after it. The orders
    -- before it are done, but their index entries stay until this transaction ends, and
    -- every run would step over them again.
    v_after_date timestamptz := '-infinity'::timestamptz;
    v_after_id bigint := 0;
    v_dates timestamptz[];
    v_base numeric;
    v_step numeric;
    v_supply numeric;
    v_pool numeric;
    v_start_supply numeric;
    v_done integer := 0;
    v_stop boolean := false;
    v_n integer;
    v_count integer;
    v_slot integer;
    v_i integer;
    v_want integer;
    v_got integer;
    v_exhausted boolean;
    v_fetched_date timestamptz;
    v_fetched_id bigint;
    v_balance numeric;
    v_held numeric;
    v_basis numeric;
    v_price numeric;
    v_pv numeric;
    v_usdp numeric;
    v_error text;
    v_traded_orders bigint[];
    v_trade_ids bigint[];
    -- The run, one element per order, in FIFO order.
    v_ids bigint[];
    v_users uuid[];
    v_types text[];
    v_amounts_usdp numeric[];
    v_amounts_pv numeric[];
    v_min_receives numeric[];
    v_closes boolean[];
    v_slots integer[];
    -- One slot per distinct user of the run (v_slots above points into these): the user's
    -- state as the run goes. v_locked is null when the row is not ours (held by another
    -- caller, or missing); v_touched when one of the user's orders traded.
    v_slot_users uuid[];
    v_locked boolean[];
    v_balances numeric[];
    v_helds numeric[];
    v_bases numeric[];
    v_has_rows boolean[];
    v_touched boolean[];
    -- What each order did: written as one set once the run ends.
    v_statuses text[];
    v_errors text[];
    v_pvs numeric[];
    v_usdps numeric[];
    v_start_prices numeric[];
    v_supplies numeric[];
begin
    perform pauv.checked_now(p_now, interval '1 day', interval '1 hour');

    -- No row (the ticker's foreign key bypassed): v_base stays NULL and every order of the
    -- ticker fails as an unknown ticker.
    select t.base_price, t.price_step, t.current_supply, t.total_usdp
    into v_base, v_step, v_supply, v_pool
    from public.issuer_trading as t
    where t.ticker = p_ticker
    for no key update;
    v_start_supply := v_supply;

    while v_done < p_max_orders and not v_stop loop
        -- A new horizon per run lets orders placed during the call join it; with an insert
        -- in flight right now the last horizon still holds.
        v_horizon := coalesce(pauv.ticker_intake_horizon(p_ticker), v_horizon);
        exit when v_horizon is null;
        v_limit := least(1000, p_max_orders - v_done);
        v_ids := '{}';
        v_users := '{}';
        v_types := '{}';
        v_amounts_usdp := '{}';
        v_amounts_pv := '{}';
        v_min_receives := '{}';
        v_closes := '{}';
        v_slots := '{}';
        v_dates := '{}';
        v_slot_users := '{}';
        v_locked := '{}';
        v_balances := '{}';
        v_helds := '{}';
        v_bases := '{}';
        v_has_rows := '{}';
        v_touched := '{}';
        v_statuses := '{}';
        v_errors := '{}';
        v_pvs := '{}';
        v_usdps := '{}';
        v_start_prices := '{}';
        v_supplies := '{}';
        v_n := 0;
        v_count := 0;
        v_exhausted := false;
        v_fetched_date := v_after_date;
        v_fetched_id := v_after_id;
        v_i := 0;
        loop
            v_i := v_i + 1;
            if v_i > v_n then
                exit when v_exhausted or v_n >= v_limit;
                -- The run's next orders (16, then up to 64, 256, 1,000 in all), locked, after
                -- the last one fetched, each with its user's slot: users are numbered in the
                -- order of their first order in the run, so the users of any prefix of the run
                -- are a prefix of the slots. Slices, not the whole run at once: a run that
                -- stops at another caller's user has fetched and locked few orders it will
                -- not use.
                v_want := least(v_limit, greatest(16, v_n * 4)) - v_n;
                select
                    v_ids || coalesce(array_agg(r.id order by r.pos), '{}'),
                    v_users || coalesce(array_agg(r.user_id order by r.pos), '{}'),
                    v_types || coalesce(array_agg(r.order_type order by r.pos), '{}'),
                    v_amounts_usdp || coalesce(array_agg(r.amount_usdp order by r.pos), '{}'),
                    v_amounts_pv || coalesce(array_agg(r.amount_pv order by r.pos), '{}'),
                    v_min_receives || coalesce(array_agg(r.min_receive order by r.pos), '{}'),
                    v_closes || coalesce(array_agg(r.closes_position order by r.pos), '{}'),
                    v_slots || coalesce(array_agg(r.slot order by r.pos), '{}'),
                    v_dates || coalesce(array_agg(r.date order by r.pos), '{}')
                into v_ids, v_users, v_types, v_amounts_usdp, v_amounts_pv, v_min_receives, v_closes,
                    v_slots, v_dates
                from (
                    select
                        f.*,
                        coalesce(
                            f.known_slot,
                            cardinality(v_slot_users) + dense_rank() over (
                                partition by f.known_slot is null order by f.first_pos
                            )::integer
                        ) as slot
                    from (
                        select
                            n.*, k.slot as known_slot,
                            min(n.pos) over (partition by n.user_id) as first_pos
                        from (
                            select o.*, row_number() over (order by o.date, o.id) as pos
                            from (
                                select
                                    q.id, q.user_id, q.order_type, q.amount_usdp, q.amount_pv,
                                    q.min_receive, q.closes_position, q.date
                                from public.queue as q
                                where q.ticker = p_ticker and q.status = 'pending'
                                    and q.date < v_horizon
                                    and (q.date, q.id) > (v_fetched_date, v_fetched_id)
                                order by q.date, q.id
                                limit v_want
                                for update
                            ) as o
                        ) as n
                        left join unnest(v_slot_users) with ordinality as k (user_id, slot)
                            on k.user_id = n.user_id
                    ) as f
                ) as r;
                v_got := cardinality(v_ids) - v_n;
                v_exhausted := v_got < v_want;
                exit when v_got = 0;
                v_fetched_date := v_dates[cardinality(v_dates)];
                v_fetched_id := v_ids[cardinality(v_ids)];
                v_n := cardinality(v_ids);
                -- The new users of these orders, locked unless another caller holds them, with
                -- their holdings of this ticker, appended to the slots.
                select
                    v_slot_users || coalesce(array_agg(d.user_id order by d.slot), '{}'),
                    v_locked || coalesce(array_agg(u.user_id is not null order by d.slot), '{}'),
                    v_balances || coalesce(array_agg(u.usdp_balance order by d.slot), '{}'),
                    v_helds || coalesce(array_agg(coalesce(p.pv_amount, 0) order by d.slot), '{}'),
                    v_bases || coalesce(array_agg(coalesce(p.avg_cost_basis, 0) order by d.slot), '{}'),
                    v_has_rows || coalesce(array_agg(p.user_id is not null order by d.slot), '{}'),
                    v_touched || coalesce(array_agg(false order by d.slot), '{}')
                into v_slot_users, v_locked, v_balances, v_helds, v_bases, v_has_rows, v_touched
                from (
                    select distinct x.user_id, x.slot
                    from unnest(v_users[v_i:v_n], v_slots[v_i:v_n]) as x (user_id, slot)
                    where x.slot > cardinality(v_slot_users)
                ) as d
                left join lateral (
                    select l.user_id, l.usdp_balance
                    from public.users as l
                    where l.user_id = d.user_id
                    for no key update skip locked
                ) as u on true
                left join public.portfolio as p on p.user_id = u.user_id and p.ticker = p_ticker;
            end if;
            if clock_timestamp() >= p_deadline then
                v_stop := true;
                exit;
            end if;
            v_slot := v_slots[v_i];
            v_error := null;
            if not v_locked[v_slot] then
                -- Held by another caller: stop here, the order stays first in line and so
                -- does every later order of the ticker. No such user at all (its foreign key
                -- bypassed): the order fails.
                if exists (select from public.users as u where u.user_id = v_users[v_i]) then
                    v_stop := true;
                    -- Tells process_all_pending_orders to end its call (a transaction-local
                    -- setting: the outcome rows have no place for it).
                    perform pg_catalog.set_config('pauv.met_busy_user', 'true', true);
                    exit;
                end if;
                v_error := format('unknown user %s', coalesce(v_users[v_i]::text, 'null'));
            end if;
            v_balance := v_balances[v_slot];
            v_held := v_helds[v_slot];
            v_basis := v_bases[v_slot];

            -- Each check is written so that a NULL fails it ("is not true"): an order goes on
            -- to the curve only when every value it needs is known and in range. The curve
            -- math is pauv.buy_quantity and pauv.sell_payout, inline and unchanged (a
            -- function call per order cost more than the arithmetic).
            v_price := v_base + v_step * v_supply;
            v_pv := null;
            v_usdp := null;
            if v_error is not null then
                null;
            elsif v_base is null then
                v_error := format('unknown ticker %s', p_ticker);
            elsif v_types[v_i] = 'buy' then
                v_usdp := v_amounts_usdp[v_i];
                if v_usdp is null then
                    v_error := 'a buy needs amount_usdp (the USDP to spend), got null';
                elsif coalesce(v_amounts_pv[v_i], 0) <> 0 then
                    v_error := format(
                        'a buy carries its amount in amount_usdp only, but amount_pv is %s',
                        v_amounts_pv[v_i]
                    );
                elsif (v_usdp between 0.01 and 1000000) is not true then
                    v_error := format('amount must be between 0.01 and 1000000 USDP, got %s', v_usdp);
                elsif v_usdp <> round(v_usdp, 6) then
                    v_error := format('USDP amounts have at most 6 decimals, got %s', v_usdp);
                elsif (v_balance >= v_usdp) is not true then
                    v_error := format(
                        'insufficient balance: %s USDP available, %s needed', v_balance, v_usdp
                    );
                else
                    -- pauv.buy_quantity(v_price, v_step, v_usdp).
                    v_pv := trunc((sqrt(v_price * v_price + 2 * v_step * v_usdp) - v_price) / v_step, 8);
                    if v_pv < 0 then
                        v_pv := 0;
                    end if;
                    while v_pv > 0 and 2 * v_price * v_pv + v_step * v_pv * v_pv > 2 * v_usdp loop
                        v_pv := v_pv - 0.00000001;
                    end loop;
                    while
                        2 * v_price * (v_pv + 0.00000001)
                        + v_step * (v_pv + 0.00000001) * (v_pv + 0.00000001) <= 2 * v_usdp
                        loop
                        v_pv := v_pv + 0.00000001;
                    end loop;
                    if (v_pv > 0) is not true then
                        v_error := format(
                            'amount too small: %s USDP buys less than 0.00000001 PV', v_usdp
                        );
                    elsif v_pv < v_min_receives[v_i] then
                        v_error := format(
                            'price moved past the limit: the buy would receive %s PV, min_receive is %s PV',
                            v_pv, v_min_receives[v_i]
                        );
                    end if;
                end if;
            elsif v_types[v_i] = 'sell' then
                v_pv := v_amounts_pv[v_i];
                if v_pv is null then
                    v_error := 'a sell needs amount_pv (the PV to sell), got null';
                elsif coalesce(v_amounts_usdp[v_i], 0) <> 0 then
                    v_error := format(
                        'a sell carries its amount in amount_pv only, but amount_usdp is %s',
                        v_amounts_usdp[v_i]
                    );
                elsif v_closes[v_i] is true and (v_pv between 0.00000001 and 1000000) is not true then
                    v_error := format('a close sells between 0.00000001 and 1000000 PV, got %s', v_pv);
                elsif v_closes[v_i] is not true and (v_pv between 0.01 and 1000000) is not true then
                    v_error := format('amount must be between 0.01 and 1000000 PV, got %s', v_pv);
                elsif v_pv <> round(v_pv, 8) then
                    v_error := format('PV amounts have at most 8 decimals, got %s', v_pv);
                elsif v_closes[v_i] is true and v_held <> v_pv then
                    v_error := format(
                        'the position changed since the close was placed: %s PV held, %s to sell; close it again',
                        v_held, v_pv
                    );
                elsif (v_held >= v_pv) is not true then
                    v_error := format('insufficient holdings: %s PV held, %s to sell', v_held, v_pv);
                else
                    -- pauv.sell_payout(v_price, v_step, v_pv).
                    v_usdp := trunc((2 * v_price * v_pv - v_step * v_pv * v_pv) * 500000) * 0.000001;
                    -- A close may pay 0: dust is worth less than the smallest USDP amount.
                    if (v_usdp > 0 or (v_usdp = 0 and v_closes[v_i] is true)) is not true then
                        v_error := format(
                            'amount too small: selling %s PV pays less than 0.000001 USDP', v_pv
                        );
                    elsif v_usdp < v_min_receives[v_i] then
                        v_error := format(
                            'price moved past the limit: the sell would pay %s USDP, min_receive is %s USDP',
                            v_usdp, v_min_receives[v_i]
                        );
                    end if;
                end if;
            else
                v_error := format(
                    'order_type must be buy or sell, got %s', coalesce(v_types[v_i], 'null')
                );
            end if;

            -- Every slot is written for every order (null where it does not apply), so
            -- all arrays stay aligned with the run's orders from subscript 1.
            v_count := v_i;
            v_errors[v_i] := v_error;
            if v_error is not null then
                v_statuses[v_i] := 'failed';
                v_pv := null;
                v_usdp := null;
                v_start_prices[v_i] := null;
                v_supplies[v_i] := null;
            else
                v_statuses[v_i] := 'completed';
                v_start_prices[v_i] := v_price;
                v_touched[v_slot] := true;
                if v_types[v_i] = 'buy' then
                    v_supply := v_supply + v_pv;
                    v_pool := v_pool + v_usdp;
                    v_balances[v_slot] := v_balance - v_usdp;
                    v_helds[v_slot] := v_held + v_pv;
                    v_bases[v_slot] := round((v_held * v_basis + v_usdp) / (v_held + v_pv), 12);
                else
                    v_supply := v_supply - v_pv;
                    v_pool := v_pool - v_usdp;
                    v_balances[v_slot] := v_balance + v_usdp;
                    v_helds[v_slot] := v_held - v_pv;
                    if v_held = v_pv then
                        v_bases[v_slot] := 0;
                    end if;
                end if;
                v_supplies[v_i] := v_supply;
            end if;
            v_pvs[v_i] := v_pv;
            v_usdps[v_i] := v_usdp;
        end loop;
        -- Orders the loop did not reach (a busy user, the deadline) stay pending.
        v_ids := v_ids[1:v_count];
        v_after_date := v_dates[v_count];
        v_after_id := v_ids[v_count];
        v_n := v_count;
        exit when v_n = 0;

        -- The run as one set: users and holdings once each, with their final values. Every
        -- update sets updated_at itself, so the tables' updated_at triggers do not fire.
        update public.users as u
        set usdp_balance = s.balance, updated_at = now()
        from unnest(v_slot_users, v_balances, v_touched) as s (user_id, balance, touched)
        where u.user_id = s.user_id and s.touched;

        -- Holdings read above are updated in place (no indexed column changes: a HOT update
        -- when the page has room), new ones inserted. A plain insert: the holding was read
        -- under the user's lock, so a conflict means another writer inserted it since, and
        -- the call fails with the unique violation and moves nothing (an upsert would have
        -- overwritten that row's tokens, and paid a speculative insertion on every row).
        update public.portfolio as p
        set pv_amount = s.held, avg_cost_basis = s.basis, updated_at = now()
        from unnest(v_slot_users, v_helds, v_bases, v_touched, v_has_rows)
            as s (user_id, held, basis, touched, has_row)
        where s.touched and s.has_row and p.user_id = s.user_id and p.ticker = p_ticker;

        insert into public.portfolio as p (user_id, ticker, pv_amount, avg_cost_basis)
        select s.user_id, p_ticker, s.held, s.basis
        from unnest(v_slot_users, v_helds, v_bases, v_touched, v_has_rows)
            as s (user_id, held, basis, touched, has_row)
        where s.touched and not s.has_row;

        -- Trades in execution order (their ids then follow FIFO), each with its price tick.
        with trade as (
            insert into public.transactions (
                user_id, amount_usdp, ticker, order_type, avg_price_paid, pv_traded,
                start_price, end_price, date, queue_id
            )
            select
                x.user_id, x.usdp, p_ticker, x.order_type, round(x.usdp / x.pv, 12), x.pv,
                x.start_price, v_base + v_step * x.supply, p_now, x.id
            from unnest(v_users, v_usdps, v_types, v_pvs, v_start_prices, v_supplies, v_ids)
                with ordinality as x (user_id, usdp, order_type, pv, start_price, supply, id, slot)
            where x.pv is not null
            order by x.slot
            returning id, queue_id, end_price
        ),

        tick as (
            insert into public.price_history (ticker, price, supply, timestamp, transaction_id)
            select p_ticker, trade.end_price, x.supply, p_now, trade.id
            from trade
            inner join unnest(v_ids, v_supplies) as x (id, supply) on x.id = trade.queue_id
            order by trade.id
        )

        select array_agg(trade.queue_id), array_agg(trade.id) into v_traded_orders, v_trade_ids
        from trade;

        update public.queue as q
        set status = s.status, error_message = s.error, processed_at = p_now, updated_at = now()
        from unnest(v_ids, v_statuses, v_errors) as s (id, status, error)
        where q.id = s.id;

        return query
        select o.id, o.order_type, o.status, o.pv, o.usdp, tr.trade_id, o.error
        from unnest(v_ids, v_types, v_statuses, v_pvs, v_usdps, v_errors)
            with ordinality as o (id, order_type, status, pv, usdp, error, slot)
        left join unnest(v_traded_orders, v_trade_ids) as tr (order_id, trade_id)
            on tr.order_id = o.id
        where o.slot <= v_n
        order by o.slot;

        v_done := v_done + v_n;
        exit when v_exhausted;
    end loop;

    if v_supply is distinct from v_start_supply then
        update public.issuer_trading as t
        set current_supply = v_supply, total_usdp = v_pool
        where t.ticker = p_ticker;
    end if;
end;
$$;

comment on function pauv.process_ticker_orders(text, integer, timestamptz, timestamptz) is
'Executes pending orders of one ticker in FIFO order, in runs of up to 1,000 orders written '
'as one set; the caller has claimed the ticker (pauv.claim_ticker). A run reads only orders '
'dated before the ticker''s intake horizon, so no placement waits for the call. An order '
'it cannot execute '
'(insufficient funds, below its min_receive, a close whose position changed, or a malformed '
'row: amount NULL, on the wrong side, out of range, unknown user or ticker) fails with the '
'reason in error_message; an order whose user another caller holds stays pending, with '
'every later order of the ticker. p_now must be within 1 day before and 1 hour after now(). '
'Returns one row per order it finished (completed or failed).';
