-- NUMERIC keeps the scale a value was written with and `value = round(value, 6)` holds for
-- 1.000...0, so one amount padded with 16,000 zeros made pools, balances, ticks and stats
-- thousands of digits long. Money columns now refuse a longer scale than their decimals,
-- and every writer of an amount stores it at its shortest scale (trim_scale: same value).

-- Values a padded amount may already have grown (same value, shorter text), so the new
-- domain constraints validate; on a healthy market no row matches.
update public.users set usdp_balance = pg_catalog.trim_scale(usdp_balance)
where pg_catalog.scale(usdp_balance) > 6;
update public.portfolio set pv_amount = pg_catalog.trim_scale(pv_amount)
where pg_catalog.scale(pv_amount) > 8;
update public.issuer_trading
set
    current_supply = pg_catalog.trim_scale(current_supply),
    total_usdp = pg_catalog.trim_scale(total_usdp),
    base_price = pg_catalog.trim_scale(base_price),
    price_step = pg_catalog.trim_scale(price_step)
where
    pg_catalog.scale(current_supply) > 8 or pg_catalog.scale(total_usdp) > 6
    or pg_catalog.scale(base_price) > 6 or pg_catalog.scale(price_step) > 6;
update public.queue
set
    amount_usdp = pg_catalog.trim_scale(amount_usdp),
    amount_pv = pg_catalog.trim_scale(amount_pv)
where pg_catalog.scale(amount_usdp) > 6 or pg_catalog.scale(amount_pv) > 8;
update public.transactions
set
    amount_usdp = pg_catalog.trim_scale(amount_usdp),
    pv_traded = pg_catalog.trim_scale(pv_traded),
    start_price = pg_catalog.trim_scale(start_price),
    end_price = pg_catalog.trim_scale(end_price)
where
    pg_catalog.scale(amount_usdp) > 6 or pg_catalog.scale(pv_traded) > 8
    or pg_catalog.scale(start_price) > 14 or pg_catalog.scale(end_price) > 14;
update public.price_history
set price = pg_catalog.trim_scale(price), supply = pg_catalog.trim_scale(supply)
where pg_catalog.scale(price) > 14 or pg_catalog.scale(supply) > 8;
update public.price_candles_hourly
set
    open = pg_catalog.trim_scale(open),
    high = pg_catalog.trim_scale(high),
    low = pg_catalog.trim_scale(low),
    close = pg_catalog.trim_scale(close),
    volume_usdp = pg_catalog.trim_scale(volume_usdp),
    volume_pv = pg_catalog.trim_scale(volume_pv),
    supply_close = pg_catalog.trim_scale(supply_close)
where
    greatest(
        pg_catalog.scale(open), pg_catalog.scale(high), pg_catalog.scale(low),
        pg_catalog.scale(close), pg_catalog.scale(volume_usdp), pg_catalog.scale(volume_pv),
        pg_catalog.scale(supply_close)
    ) > 14;
update public.issuer_stats_cache
set
    current_price = pg_catalog.trim_scale(current_price),
    volume_24h = pg_catalog.trim_scale(volume_24h),
    market_cap = pg_catalog.trim_scale(market_cap),
    circulating_supply = pg_catalog.trim_scale(circulating_supply)
where
    greatest(
        pg_catalog.scale(current_price), pg_catalog.scale(volume_24h),
        pg_catalog.scale(market_cap), pg_catalog.scale(circulating_supply)
    ) > 14;
update pauv.usdp_movements set amount = pg_catalog.trim_scale(amount)
where pg_catalog.scale(amount) > 6;

alter domain public.usdp_amount
add constraint usdp_amount_scale_at_most_6 check (pg_catalog.scale(value) <= 6);
alter domain public.pv_quantity
add constraint pv_quantity_scale_at_most_8 check (pg_catalog.scale(value) <= 8);

alter table pauv.usdp_movements
add constraint usdp_movements_amount_scale_at_most_6 check (pg_catalog.scale(amount) <= 6);

comment on domain public.usdp_amount is
'A USDP amount: finite, non-negative, below 1e15, at most 6 decimals (never rounded) and '
'stored with a scale of at most 6.';
comment on domain public.pv_quantity is
'A PV token quantity: finite, non-negative, below 1e15, at most 8 decimals (never rounded) '
'and stored with a scale of at most 8.';

-- As before, plus: the amount is moved at its shortest scale, so a padded deposit cannot
-- lengthen the balance (deposit_usdp, withdraw_usdp and increment_user_balance all come here).
create or replace function pauv.move_usdp(p_user_id uuid, p_amount numeric, p_direction integer)
returns numeric
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_balance numeric;
    v_amount numeric;
begin
    if p_amount is null or p_amount = 'NaN' or p_amount in ('Infinity', '-Infinity') then
        raise exception 'amount must be a finite number, got %', coalesce(p_amount::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if p_amount <= 0 or p_amount > 1000000000 then
        raise exception 'amount must be greater than 0 and at most 1000000000 USDP, got %', p_amount
            using errcode = 'invalid_parameter_value';
    end if;
    if p_amount <> round(p_amount, 6) then
        raise exception 'USDP amounts have at most 6 decimals, got %', p_amount
            using errcode = 'invalid_parameter_value';
    end if;
    v_amount := pg_catalog.trim_scale(p_amount);

    select u.usdp_balance into v_balance
    from public.users as u
    where u.user_id = p_user_id
    for update;
    if not found then
        raise exception 'unknown user %', p_user_id using errcode = 'no_data_found';
    end if;
    if p_direction < 0 and v_balance < v_amount then
        raise exception 'insufficient balance: % USDP available, % requested', v_balance, v_amount
            using errcode = 'PA001';
    end if;

    update public.users
    set usdp_balance = usdp_balance + p_direction * v_amount
    where user_id = p_user_id
    returning usdp_balance into v_balance;

    insert into pauv.usdp_movements (user_id, amount) values (p_user_id, p_direction * v_amount);
    return v_balance;
end;
$$;
