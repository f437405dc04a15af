-- Demo, step 2 (run once per simulated quarter hour): about 125 traders each place one
-- order through place_order, signed in as themselves exactly as the API does it (role
-- plus request.jwt.claims, transaction-local). Popular issuers get more orders; 70% are
-- buys of 5 to 200 USDP, half of them with a slippage limit 3% under their quote (some
-- fail when orders ahead move the price); 30% sell part of a holding, or close it with
-- close_position when it is under 1 PV. Refusals are counted, not fatal.
do $$
declare
    v_trader record;
    v_ticker text;
    v_held numeric;
    v_amount numeric;
    v_min_receive numeric;
    v_placed integer := 0;
    v_refused integer := 0;
    v_tickers constant text[] := array[
        'AAPL', 'AAPL', 'AAPL', 'BKLN', 'BKLN', 'CHEF', 'DJMX', 'DJMX', 'ECOL', 'FITX',
        'GAMR', 'GAMR', 'HIKE'
    ];
begin
    for v_trader in
        select u.user_id from public.users as u
        where u.username like 'trader%' and random() < 0.42
    loop
        v_ticker := v_tickers[1 + floor(random() * cardinality(v_tickers))::integer];
        select p.pv_amount into v_held
        from public.portfolio as p
        where p.user_id = v_trader.user_id and p.ticker = v_ticker;

        perform set_config('request.jwt.claims',
            json_build_object('sub', v_trader.user_id, 'role', 'authenticated')::text, true);
        perform set_config('role', 'authenticated', true);
        begin
            if coalesce(v_held, 0) >= 1 and random() < 0.3 then
                perform public.place_order(v_ticker, 'sell', round(v_held * (0.2 + random() * 0.8)::numeric, 8));
            elsif v_held > 0 and random() < 0.3 then
                perform public.close_position(v_ticker);
            else
                v_amount := round((5 + random() * 195)::numeric, 2);
                v_min_receive := case when random() < 0.5 then (
                    select trunc(q.receive * 0.97, 8) from public.quote_order(v_ticker, 'buy', v_amount) as q
                ) end;
                perform public.place_order(v_ticker, 'buy', v_amount, p_min_receive => v_min_receive);
            end if;
            v_placed := v_placed + 1;
        exception when sqlstate 'PA001' or sqlstate 'PA002' or sqlstate 'PA003' or sqlstate 'PA005' then
            v_refused := v_refused + 1;
        end;
        perform set_config('role', 'none', true);
    end loop;
    raise notice '  placed % orders (% refused by place_order''s checks)', v_placed, v_refused;
end;
$$;
