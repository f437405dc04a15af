-- A direct INSERT into queue (the Pauv app's order API as service_role, the guide's test)
-- gets place_order's checks and errors, and only a new pending order stamped at intake gets
-- in: a backdated date broke FIFO forever, a 'processing' row was never processed.
-- Balance and holdings stay the processor's to refuse. The table's owner (postgres,
-- migrations, place_order, which checks everything itself) may still record history.

-- The amount columns were domain-typed, and a domain is checked before any BEFORE trigger
-- runs: a direct insert with 7 decimals got 23514 instead of place_order's 22023. Plain
-- numeric plus table checks (applied after the trigger) keep the same rules for every row.
alter table public.queue
alter column amount_usdp type numeric,
alter column amount_pv type numeric;

alter table public.queue
add constraint queue_amount_usdp_is_a_usdp_amount check (
    amount_usdp >= 0 and amount_usdp < 1e15 and pg_catalog.scale(amount_usdp) <= 6
),
add constraint queue_amount_pv_is_a_pv_quantity check (
    amount_pv >= 0 and amount_pv < 1e15 and pg_catalog.scale(amount_pv) <= 8
);

create function pauv.admit_queue_order()
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
'BEFORE INSERT on queue: amounts at their shortest scale; for any role but the table''s owner '
'the row must be a new pending order passing place_order''s checks (22023, P0002, PA003); '
'a pending order takes the ticker''s intake lock and is stamped with the time of intake.';

drop trigger queue_stamp_order on public.queue;
drop function pauv.stamp_queue_order();

create trigger queue_admit_order
before insert on public.queue
for each row execute function pauv.admit_queue_order();

grant execute on function pauv.admit_queue_order() to service_role;
