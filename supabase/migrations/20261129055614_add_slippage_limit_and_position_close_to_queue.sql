-- Issue 16 items 1 and 3: an order may carry a slippage limit, and a sell may close its
-- user's whole position (even below the 0.01 PV minimum). Both live on the queue row: the
-- processor decides at execution, when the price is known.

alter table public.queue
add column min_receive numeric,
add column closes_position boolean not null default false;

comment on column public.queue.min_receive is
'Slippage limit: the least a buy must receive (PV) or a sell must pay (USDP); the order '
'fails, moving nothing, when execution would give less. NULL: no limit.';
comment on column public.queue.closes_position is
'Set by close_position(): this sell is the user''s whole holding of the ticker, so it may '
'be below the 0.01 PV minimum and pay 0 USDP, and it fails if the holding has changed.';

-- NaN is greater than every number, so "> 0" alone would admit it; "< 1e15" does not.
alter table public.queue
add constraint queue_min_receive_is_an_amount_of_the_side_received check (
    min_receive > 0 and min_receive < 1e15
    and pg_catalog.scale(min_receive) <= case when order_type = 'sell' then 6 else 8 end
),
add constraint queue_only_a_sell_closes_a_position check (
    not closes_position or order_type = 'sell'
);

-- A dust position can be worth less than 0.000001 USDP: its close is a trade that pays 0,
-- at an average price of 0. Every other trade still has a positive price.
alter table public.transactions
drop constraint transactions_avg_price_positive,
add constraint transactions_avg_price_positive_unless_a_worthless_sell check (
    avg_price_paid > 0
    or (order_type = 'sell' and amount_usdp = 0 and avg_price_paid = 0)
);

-- Shared by place_order, close_position and a direct INSERT: same rules, same errors.
create function pauv.check_min_receive(p_order_type text, p_min_receive numeric)
returns numeric
language plpgsql
immutable
set search_path = ''
as $$
begin
    if p_min_receive is null then
        return null;
    end if;
    if p_min_receive = 'NaN' or p_min_receive in ('Infinity', '-Infinity') then
        raise exception 'min_receive must be a finite number, got %', p_min_receive
            using errcode = 'invalid_parameter_value';
    end if;
    if p_min_receive <= 0 or p_min_receive >= 1e15 then
        raise exception 'min_receive must be greater than 0 and less than 1e15, got %',
            pg_catalog.trim_scale(p_min_receive)
            using errcode = 'invalid_parameter_value';
    end if;
    if p_order_type = 'buy' and p_min_receive <> round(p_min_receive, 8) then
        raise exception 'a buy''s min_receive is PV with at most 8 decimals, got %',
            pg_catalog.trim_scale(p_min_receive)
            using errcode = 'invalid_parameter_value';
    end if;
    if p_order_type = 'sell' and p_min_receive <> round(p_min_receive, 6) then
        raise exception 'a sell''s min_receive is USDP with at most 6 decimals, got %',
            pg_catalog.trim_scale(p_min_receive)
            using errcode = 'invalid_parameter_value';
    end if;
    return pg_catalog.trim_scale(p_min_receive);
end;
$$;

comment on function pauv.check_min_receive(text, numeric) is
'Refuses (22023) a slippage limit that is not a finite amount above 0 with the scale of '
'what the order receives (PV, 8 decimals, for a buy; USDP, 6, for a sell); returns it at '
'its shortest scale, NULL for none.';

-- The admission trigger as in 20261129031006, plus: min_receive trimmed for every role and
-- checked like place_order's for all but the owner; closes_position refused on a direct
-- INSERT (close_position() checks that the amount is the whole holding; an INSERT cannot).
create or replace function pauv.admit_queue_order()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    v_amount numeric;
    v_side text := case new.order_type when 'buy' then 'amount_usdp' else 'amount_pv' end;
    v_other numeric := case new.order_type when 'buy' then new.amount_pv else new.amount_usdp end;
begin
    -- The same values at their shortest scale: padding with zeros cannot lengthen anything.
    new.amount_usdp := pg_catalog.trim_scale(new.amount_usdp);
    new.amount_pv := pg_catalog.trim_scale(new.amount_pv);
    new.min_receive := pg_catalog.trim_scale(new.min_receive);

    if not pg_catalog.pg_has_role(
        current_user,
        (select c.relowner from pg_catalog.pg_class as c where c.oid = tg_relid),
        'member'
    ) then
        if new.status is distinct from 'pending' then
            raise exception 'a new order is ''pending'' (the processor sets every later status), got %',
                coalesce(new.status, 'null')
                using errcode = 'invalid_parameter_value';
        end if;
        if new.processed_at is not null or new.error_message is not null then
            raise exception 'a new order has no processed_at and error_message: the processor sets them'
                using errcode = 'invalid_parameter_value';
        end if;
        if new.legacy_id is not null then
            raise exception 'legacy_id is for orders adopted from the Pauv app''s own queue only'
                using errcode = 'invalid_parameter_value';
        end if;
        if new.closes_position then
            raise exception 'closes_position is set by close_position(p_ticker): call it to close a position'
                using errcode = 'invalid_parameter_value';
        end if;
        if new.order_type in ('buy', 'sell') then
            v_amount := case new.order_type when 'buy' then new.amount_usdp else new.amount_pv end;
            if coalesce(v_other, 0) <> 0 then
                raise exception 'a % %: % must be 0 or null, got %',
                    new.order_type,
                    case new.order_type when 'buy' then 'spends amount_usdp (USDP)'
                        else 'gives up amount_pv (PV)' end,
                    case new.order_type when 'buy' then 'amount_pv' else 'amount_usdp' end,
                    v_other
                    using errcode = 'invalid_parameter_value';
            end if;
            if coalesce(v_amount, 0) = 0 then
                raise exception 'a % %: % is required, got %',
                    new.order_type,
                    case new.order_type when 'buy' then 'spends amount_usdp (USDP)'
                        else 'gives up amount_pv (PV)' end,
                    v_side, coalesce(v_amount::text, 'null')
                    using errcode = 'invalid_parameter_value';
            end if;
        end if;
        perform pauv.check_order_input(new.ticker, new.order_type, v_amount);
        perform pauv.check_min_receive(new.order_type, new.min_receive);
        perform pauv.lock_order_intake(new.user_id);
        perform pauv.check_pending_order_limit(new.user_id);
    end if;

    if new.status = 'pending' then
        -- Stamped after the ticker's intake lock (shared), so no processor run of this
        -- ticker overlaps the window between stamping and commit; an explicit date is
        -- overwritten: a new order is never older than the orders already executed.
        perform pg_catalog.pg_advisory_xact_lock_shared(1885435254, pauv.ticker_lock_id(new.ticker));
        new.date := pg_catalog.clock_timestamp();
    elsif new.date is null then
        new.date := pg_catalog.clock_timestamp();
    end if;
    return new;
end;
$$;

comment on function pauv.admit_queue_order() is
'BEFORE INSERT on queue: amounts and min_receive at their shortest scale; for any role but '
'the table''s owner the row must be a new pending order passing place_order''s checks '
'(22023, P0002, PA003) and must not set closes_position; a pending order takes the '
'ticker''s intake lock and is stamped with the time of intake.';

grant execute on function pauv.check_min_receive(text, numeric) to service_role;
