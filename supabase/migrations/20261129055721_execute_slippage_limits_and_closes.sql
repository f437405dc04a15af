-- Issue 16 items 1 and 3 in the processor (the body of 20261129031944 plus two checks):
-- - min_receive: the order fails, moving nothing, when what it would receive (the exact PV
--   of pauv.buy_quantity, the exact USDP of pauv.sell_payout, as written to the trade) is
--   less; the reason states both numbers.
-- - closes_position: a close sells any amount from 0.00000001 PV (no 0.01 minimum) and may
--   pay 0 USDP, but only the whole holding: if the holding is no longer the amount placed
--   (close_position() makes that impossible; a row written by the table's owner need not
--   keep it) the order fails, so a completed close always leaves exactly 0 with basis 0.
create or replace function pauv.process_ticker_orders(
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
    v_ids bigint[] := '{}'::bigint[];
    v_types text[] := '{}'::text[];
    v_users uuid[] := '{}'::uuid[];
    v_statuses text[] := '{}'::text[];
    v_errors text[] := '{}'::text[];
    v_pvs numeric[] := '{}'::numeric[];
    v_usdps numeric[] := '{}'::numeric[];
    v_start_prices numeric[] := '{}'::numeric[];
    v_supplies numeric[] := '{}'::numeric[];
    v_balance_deltas numeric[] := '{}'::numeric[];
    v_new_holdings numeric[] := '{}'::numeric[];
    v_new_bases numeric[] := '{}'::numeric[];
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

    for v_order in
        select q.id, q.user_id, q.order_type, q.amount_usdp, q.amount_pv, q.min_receive,
            q.closes_position
        from public.queue as q
        where q.ticker = p_ticker and q.status = 'pending'
        order by q.date, q.id
        limit p_max_orders
        for update
    loop
        exit when clock_timestamp() >= p_deadline;
        v_error := null;

        if v_order.user_id = any(v_users) or v_n >= 500 then
            return query select * from pauv.write_order_batch(
                p_ticker, p_now, v_ids, v_types, v_users, v_statuses, v_errors, v_pvs, v_usdps,
                v_start_prices, v_supplies, v_balance_deltas, v_new_holdings, v_new_bases
            );
            v_n := 0;
            v_ids := '{}'::bigint[]; v_types := '{}'::text[]; v_users := '{}'::uuid[];
            v_statuses := '{}'::text[]; v_errors := '{}'::text[]; v_pvs := '{}'::numeric[];
            v_usdps := '{}'::numeric[]; v_start_prices := '{}'::numeric[];
            v_supplies := '{}'::numeric[]; v_balance_deltas := '{}'::numeric[];
            v_new_holdings := '{}'::numeric[]; v_new_bases := '{}'::numeric[];
        end if;

        select u.usdp_balance, p.pv_amount, p.avg_cost_basis into v_balance, v_held, v_basis
        from public.users as u
        left join public.portfolio as p on p.user_id = u.user_id and p.ticker = p_ticker
        where u.user_id = v_order.user_id
        for no key update of u skip locked;
        if not found then
            -- Locked by another caller: stop here, the order stays first in line. No such
            -- user at all (its foreign key bypassed): the order fails.
            exit when exists (select from public.users as u where u.user_id = v_order.user_id);
            v_error := format('unknown user %s', coalesce(v_order.user_id::text, 'null'));
        end if;
        v_held := coalesce(v_held, 0);
        v_basis := coalesce(v_basis, 0);

        -- Each check is written so that a NULL fails it ("is not true"): an order goes on
        -- to the curve only when every value it needs is known and in range.
        v_price := v_base + v_step * v_supply;
        v_pv := null;
        v_usdp := null;
        if v_error is not null then
            null;
        elsif v_base is null then
            v_error := format('unknown ticker %s', p_ticker);
        elsif v_order.order_type = 'buy' then
            v_usdp := v_order.amount_usdp;
            if v_usdp is null then
                v_error := 'a buy needs amount_usdp (the USDP to spend), got null';
            elsif coalesce(v_order.amount_pv, 0) <> 0 then
                v_error := format(
                    'a buy carries its amount in amount_usdp only, but amount_pv is %s',
                    v_order.amount_pv
                );
            elsif (v_usdp between 0.01 and 1000000) is not true then
                v_error := format('amount must be between 0.01 and 1000000 USDP, got %s', v_usdp);
            elsif v_usdp <> round(v_usdp, 6) then
                v_error := format('USDP amounts have at most 6 decimals, got %s', v_usdp);
            elsif (v_balance >= v_usdp) is not true then
                v_error := format('insufficient balance: %s USDP available, %s needed', v_balance, v_usdp);
            else
                v_pv := pauv.buy_quantity(v_price, v_step, v_usdp);
                if (v_pv > 0) is not true then
                    v_error := format('amount too small: %s USDP buys less than 0.00000001 PV', v_usdp);
                elsif v_pv < v_order.min_receive then
                    v_error := format(
                        'price moved past the limit: the buy would receive %s PV, min_receive is %s PV',
                        v_pv, v_order.min_receive
                    );
                end if;
            end if;
        elsif v_order.order_type = 'sell' then
            v_pv := v_order.amount_pv;
            if v_pv is null then
                v_error := 'a sell needs amount_pv (the PV to sell), got null';
            elsif coalesce(v_order.amount_usdp, 0) <> 0 then
                v_error := format(
                    'a sell carries its amount in amount_pv only, but amount_usdp is %s',
                    v_order.amount_usdp
                );
            elsif v_order.closes_position is true and (v_pv between 0.00000001 and 1000000) is not true then
                v_error := format('a close sells between 0.00000001 and 1000000 PV, got %s', v_pv);
            elsif v_order.closes_position is not true and (v_pv between 0.01 and 1000000) is not true then
                v_error := format('amount must be between 0.01 and 1000000 PV, got %s', v_pv);
            elsif v_pv <> round(v_pv, 8) then
                v_error := format('PV amounts have at most 8 decimals, got %s', v_pv);
            elsif v_order.closes_position is true and v_held <> v_pv then
                v_error := format(
                    'the position changed since the close was placed: %s PV held, %s to sell; close it again',
                    v_held, v_pv
                );
            elsif (v_held >= v_pv) is not true then
                v_error := format('insufficient holdings: %s PV held, %s to sell', v_held, v_pv);
            else
                v_usdp := pauv.sell_payout(v_price, v_step, v_pv);
                -- A close may pay 0: dust is worth less than the smallest USDP amount.
                if (v_usdp > 0 or (v_usdp = 0 and v_order.closes_position is true)) is not true then
                    v_error := format('amount too small: selling %s PV pays less than 0.000001 USDP', v_pv);
                elsif v_usdp < v_order.min_receive then
                    v_error := format(
                        'price moved past the limit: the sell would pay %s USDP, min_receive is %s USDP',
                        v_usdp, v_order.min_receive
                    );
                end if;
            end if;
        else
            v_error := format(
                'order_type must be buy or sell, got %s', coalesce(v_order.order_type, 'null')
            );
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
'advisory lock. An order it cannot execute (insufficient funds, below its min_receive, a '
'close whose position changed, or a malformed row: amount NULL, on the wrong side, out of '
'range, unknown user or ticker) fails with the reason in error_message. p_now must be '
'within 1 day before and 1 hour after now(). Returns one row per order it finished '
'(completed or failed).';
