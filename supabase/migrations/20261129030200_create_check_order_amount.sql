-- The order checks that need no table: side and amount, with place_order's messages and
-- SQLSTATE (22023), shared by every path that takes an order or quotes one.
create function pauv.check_order_amount(p_order_type text, p_amount numeric)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
    if p_order_type is null or p_order_type not in ('buy', 'sell') then
        raise exception 'order_type must be ''buy'' or ''sell'', got %', coalesce(p_order_type, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if p_amount is null or p_amount = 'NaN' or p_amount in ('Infinity', '-Infinity') then
        raise exception 'amount must be a finite number, got %', coalesce(p_amount::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if p_amount < 0.01 or p_amount > 1000000 then
        raise exception 'amount must be between 0.01 and 1000000, got %', p_amount
            using errcode = 'invalid_parameter_value';
    end if;
    if p_order_type = 'buy' and p_amount <> round(p_amount, 6) then
        raise exception 'a buy amount is USDP with at most 6 decimals, got %', p_amount
            using errcode = 'invalid_parameter_value';
    end if;
    if p_order_type = 'sell' and p_amount <> round(p_amount, 8) then
        raise exception 'a sell amount is PV with at most 8 decimals, got %', p_amount
            using errcode = 'invalid_parameter_value';
    end if;
end;
$$;

comment on function pauv.check_order_amount(text, numeric) is
'Raises 22023 unless p_order_type is buy or sell and p_amount a finite number from 0.01 to '
'1000000 with at most 6 decimals (USDP, a buy) or 8 (PV, a sell).';

grant execute on function pauv.check_order_amount(text, numeric) to service_role;
