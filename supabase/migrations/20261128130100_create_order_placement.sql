-- Placing and cancelling orders for signed-in users. The checks run in SECURITY DEFINER
-- functions in pauv (not exposed); public holds thin SECURITY INVOKER wrappers the API
-- serves. Errors carry stable SQLSTATEs, listed in the README.

create function pauv.place_order(
    p_ticker text,
    p_order_type text,
    p_amount numeric,
    p_client_order_id text default null
)
returns public.queue
language plpgsql
security definer
set search_path = ''
-- Point lookups only: keep them on their indexes even when statistics say a table is
-- empty (see pauv.process_ticker_orders).
set enable_seqscan = off
as $$
declare
    v_user_id uuid := auth.uid();
    v_order public.queue;
    v_held numeric;
    v_reserved numeric;
    v_pending integer;
begin
    if v_user_id is null then
        raise exception 'sign in to place orders' using errcode = 'insufficient_privilege';
    end if;
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
    if p_client_order_id is not null and char_length(p_client_order_id) not between 1 and 64 then
        raise exception 'client_order_id must have 1 to 64 characters'
            using errcode = 'invalid_parameter_value';
    end if;
    if not exists (select 1 from public.issuer_trading as t where t.ticker = p_ticker) then
        raise exception 'unknown ticker %', coalesce(p_ticker, 'null') using errcode = 'no_data_found';
    end if;

    -- One placement at a time per user, so two concurrent placements cannot both
    -- spend the same balance. An advisory lock, not the users row: the processor
    -- updates that row and placing must not wait for a whole processing batch.
    perform pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtext('pauv.place_order'), pg_catalog.hashtext(v_user_id::text)
    );

    if p_client_order_id is not null then
        select q.* into v_order
        from public.queue as q
        where q.user_id = v_user_id and q.client_order_id = p_client_order_id;
        if found then
            return v_order;
        end if;
    end if;

    -- One statement, one snapshot: the processor moves an order out of 'pending' and
    -- its money in the same commit, so holdings net of pending orders stay consistent.
    select
        case
            when p_order_type = 'buy' then u.usdp_balance
            else coalesce((
                select p.pv_amount from public.portfolio as p
                where p.user_id = v_user_id and p.ticker = p_ticker
            ), 0)
        end,
        coalesce(r.reserved, 0),
        coalesce(r.pending, 0)
    into v_held, v_reserved, v_pending
    from public.users as u
    left join lateral (
        select
            count(*)::integer as pending,
            sum(
                case
                    when p_order_type = 'buy' and q.order_type = 'buy' then q.amount_usdp
                    when p_order_type = 'sell' and q.order_type = 'sell' and q.ticker = p_ticker
                        then q.amount_pv
                    else 0
                end
            ) as reserved
        from public.queue as q
        where q.user_id = u.user_id and q.status = 'pending'
    ) as r on true
    where u.user_id = v_user_id;
    if not found then
        raise exception 'unknown user %: no account row', v_user_id using errcode = 'no_data_found';
    end if;

    if v_pending >= 5 then
        raise exception 'at most 5 pending orders per user: cancel one or wait for it to execute'
            using errcode = 'PA003';
    end if;
    if p_order_type = 'buy' and v_held - v_reserved < p_amount then
        raise exception 'insufficient balance: % USDP available after pending buys, % requested',
            v_held - v_reserved, p_amount
            using errcode = 'PA001';
    end if;
    if p_order_type = 'sell' and v_held - v_reserved < p_amount then
        raise exception 'insufficient holdings: % % available after pending sells, % requested',
            v_held - v_reserved, p_ticker, p_amount
            using errcode = 'PA002';
    end if;

    insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv, client_order_id)
    values (
        v_user_id,
        p_ticker,
        p_order_type,
        case when p_order_type = 'buy' then p_amount end,
        case when p_order_type = 'sell' then p_amount end,
        p_client_order_id
    )
    returning * into v_order;
    return v_order;
end;
$$;

comment on function pauv.place_order(text, text, numeric, text) is
'Queues an order for the signed-in user after checking ticker, amount (0.01 to 1000000, '
'USDP for a buy, PV for a sell), at most 5 pending orders, and what the user has net of '
'pending orders. The same client_order_id returns the existing order.';

create function public.place_order(
    p_ticker text,
    p_order_type text,
    p_amount numeric,
    p_client_order_id text default null
)
returns public.queue
language sql
set search_path = ''
as $$
    select * from pauv.place_order(p_ticker, p_order_type, p_amount, p_client_order_id)
$$;

comment on function public.place_order(text, text, numeric, text) is
'API: place a buy (p_amount in USDP) or sell (p_amount in PV) order as the signed-in user. '
'Returns the queued order. Errors: 22023 bad input, P0002 unknown ticker, 42501 not signed '
'in, PA001 insufficient balance, PA002 insufficient holdings, PA003 too many pending orders.';

create function pauv.cancel_order(p_order_id bigint)
returns public.queue
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_user_id uuid := auth.uid();
    v_order public.queue;
begin
    if v_user_id is null then
        raise exception 'sign in to cancel orders' using errcode = 'insufficient_privilege';
    end if;

    update public.queue as q
    set status = 'cancelled', processed_at = now()
    where q.id = p_order_id and q.user_id = v_user_id and q.status = 'pending'
    returning q.* into v_order;
    if found then
        return v_order;
    end if;

    select q.* into v_order from public.queue as q where q.id = p_order_id and q.user_id = v_user_id;
    if not found then
        raise exception 'no order % of yours', p_order_id using errcode = 'no_data_found';
    end if;
    raise exception 'order % is %: only pending orders can be cancelled', p_order_id, v_order.status
        using errcode = 'PA004';
end;
$$;

comment on function pauv.cancel_order(bigint) is
'Cancels a pending order of the signed-in user.';

create function public.cancel_order(p_order_id bigint)
returns public.queue
language sql
set search_path = ''
as $$
    select * from pauv.cancel_order(p_order_id)
$$;

comment on function public.cancel_order(bigint) is
'API: cancel one of your pending orders. Errors: P0002 no such order of yours, PA004 the '
'order is no longer pending, 42501 not signed in.';

grant usage on schema pauv to authenticated;
grant execute on function pauv.place_order(text, text, numeric, text) to authenticated;
grant execute on function public.place_order(text, text, numeric, text) to authenticated;
grant execute on function pauv.cancel_order(bigint) to authenticated;
grant execute on function public.cancel_order(bigint) to authenticated;
