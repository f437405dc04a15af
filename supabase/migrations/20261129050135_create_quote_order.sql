-- What an order would get if it executed next (issue 16 item 2), for everyone including
-- anon: the app shows it before the user places the order. Computed with the engine's own
-- curve functions on the issuer's current state, so an order that executes alone receives
-- exactly the quote. Pending orders ahead of it are not simulated: they may move the price
-- first (a slippage limit, p_min_receive, bounds what the trader accepts).
-- SECURITY INVOKER: it reads public market data only, through the intake's order checks
-- (place_order's, so the same errors) and the curve functions, which read no private
-- table and so are granted to the API roles.
create function public.quote_order(
    p_ticker text,
    p_order_type text,
    p_amount numeric,
    out ticker text,
    out order_type text,
    out amount numeric,
    out receive numeric,
    out avg_price numeric,
    out start_price numeric,
    out end_price numeric,
    out price_impact_pct numeric
)
returns record
language plpgsql
stable
set search_path = ''
as $$
declare
    v_base numeric;
    v_step numeric;
    v_supply numeric;
    v_tokens numeric;
begin
    amount := pauv.check_order_input(p_ticker, p_order_type, p_amount);
    select t.base_price, t.price_step, t.current_supply into v_base, v_step, v_supply
    from public.issuer_trading as t
    where t.ticker = p_ticker;
    if not found then
        raise exception 'unknown ticker %', coalesce(p_ticker, 'null') using errcode = 'no_data_found';
    end if;

    ticker := p_ticker;
    order_type := p_order_type;
    start_price := v_base + v_step * v_supply;
    if p_order_type = 'buy' then
        receive := pauv.buy_quantity(start_price, v_step, amount);
        if receive = 0 then
            raise exception 'amount too small: % USDP buys less than 0.00000001 PV', amount
                using errcode = 'invalid_parameter_value';
        end if;
        v_tokens := receive;
        end_price := v_base + v_step * (v_supply + receive);
        avg_price := round(amount / receive, 12);
    else
        if amount > v_supply then
            raise exception 'cannot sell % PV of %: only % PV exist', amount, p_ticker, v_supply
                using errcode = 'invalid_parameter_value';
        end if;
        receive := pauv.sell_payout(start_price, v_step, amount);
        if receive = 0 then
            raise exception 'amount too small: selling % PV pays less than 0.000001 USDP', amount
                using errcode = 'invalid_parameter_value';
        end if;
        v_tokens := amount;
        end_price := v_base + v_step * (v_supply - amount);
        avg_price := round(receive / v_tokens, 12);
    end if;
    price_impact_pct := round((end_price - start_price) / start_price * 100, 6);
end;
$$;

comment on function public.quote_order(text, text, numeric) is
'What an order would receive if it executed next, alone: PV for a buy of p_amount USDP, '
'USDP for a sell of p_amount PV; with its average price, the price before and after, and '
'the price impact in percent. Same checks and SQLSTATEs as place_order (22023, P0002).';

grant execute on function public.quote_order(text, text, numeric)
to anon, authenticated, service_role;
grant execute on function pauv.check_order_input(text, text, numeric) to anon, authenticated;
grant execute on function pauv.buy_quantity(numeric, numeric, numeric) to anon, authenticated;
grant execute on function pauv.sell_payout(numeric, numeric, numeric) to anon, authenticated;
