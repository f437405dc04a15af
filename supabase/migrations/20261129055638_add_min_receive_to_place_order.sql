-- Issue 16 item 1: place_order takes a slippage limit, p_min_receive, stored on the order.
-- A new parameter is a new signature: the old functions go (a default keeps every existing
-- call, positional or named, working) and the grants are given again.
drop function public.place_order(text, text, numeric, text);
drop function pauv.place_order(text, text, numeric, text);

-- What place_order and close_position do first, written once.
create function pauv.begin_order_intake(p_user_id uuid, p_client_order_id text)
returns public.queue
language plpgsql
set search_path = ''
set enable_seqscan = off
as $$
declare
    v_order public.queue;
begin
    if p_client_order_id is not null and char_length(p_client_order_id) not between 1 and 64 then
        raise exception 'client_order_id must have 1 to 64 characters'
            using errcode = 'invalid_parameter_value';
    end if;
    -- Not the users row: the processor updates it, and placing must not wait for a whole
    -- processing batch.
    perform pauv.lock_order_intake(p_user_id);
    if p_client_order_id is not null then
        select q.* into v_order
        from public.queue as q
        where q.user_id = p_user_id and q.client_order_id = p_client_order_id;
        if found then
            return v_order;
        end if;
    end if;
    perform pauv.check_pending_order_limit(p_user_id);
    return null;
end;
$$;

comment on function pauv.begin_order_intake(uuid, text) is
'Checks client_order_id (22023), takes the user''s intake lock, and returns the user''s '
'order with that client_order_id if there is one (the caller returns it: placing is '
'idempotent); otherwise checks the pending-order limit (PA003) and returns NULL.';

-- The body of 20261129030949 plus p_min_receive (checked before any lock is taken), its
-- first steps now in begin_order_intake.
create function pauv.place_order(
    p_ticker text,
    p_order_type text,
    p_amount numeric,
    p_client_order_id text default null,
    p_min_receive numeric default null
)
returns public.queue
language plpgsql
security definer
set search_path = ''
set enable_seqscan = off
as $$
declare
    v_user_id uuid := auth.uid();
    v_amount numeric;
    v_min_receive numeric;
    v_order public.queue;
    v_held numeric;
    v_reserved numeric;
begin
    if v_user_id is null then
        raise exception 'sign in to place orders' using errcode = 'insufficient_privilege';
    end if;
    v_amount := pauv.check_order_input(p_ticker, p_order_type, p_amount);
    v_min_receive := pauv.check_min_receive(p_order_type, p_min_receive);

    v_order := pauv.begin_order_intake(v_user_id, p_client_order_id);
    if v_order.id is not null then
        return v_order;
    end if;

    -- One statement, one snapshot: the processor moves an order out of 'pending' and its
    -- money in the same commit, so holdings net of pending orders stay consistent.
    select
        case
            when p_order_type = 'buy' then u.usdp_balance
            else coalesce((
                select p.pv_amount from public.portfolio as p
                where p.user_id = v_user_id and p.ticker = p_ticker
            ), 0)
        end,
        coalesce((
            select sum(case when p_order_type = 'buy' then q.amount_usdp else q.amount_pv end)
            from public.queue as q
            where
                q.user_id = v_user_id and q.status = 'pending' and q.order_type = p_order_type
                and (p_order_type = 'buy' or q.ticker = p_ticker)
        ), 0)
    into v_held, v_reserved
    from public.users as u
    where u.user_id = v_user_id;

    if p_order_type = 'buy' and v_held - v_reserved < v_amount then
        raise exception 'insufficient balance: % USDP available after pending buys, % requested',
            v_held - v_reserved, v_amount
            using errcode = 'PA001';
    end if;
    if p_order_type = 'sell' and v_held - v_reserved < v_amount then
        raise exception 'insufficient holdings: % % available after pending sells, % requested',
            v_held - v_reserved, p_ticker, v_amount
            using errcode = 'PA002';
    end if;

    insert into public.queue (
        user_id, ticker, order_type, amount_usdp, amount_pv, client_order_id, min_receive
    )
    values (
        v_user_id,
        p_ticker,
        p_order_type,
        case when p_order_type = 'buy' then v_amount end,
        case when p_order_type = 'sell' then v_amount end,
        p_client_order_id,
        v_min_receive
    )
    returning * into v_order;
    return v_order;
end;
$$;

comment on function pauv.place_order(text, text, numeric, text, numeric) is
'Queues an order for the signed-in user after checking ticker, amount (0.01 to 1000000, '
'USDP for a buy, PV for a sell), the slippage limit p_min_receive (PV a buy must receive, '
'USDP a sell must pay), at most 5 pending orders, and what the user has net of pending '
'orders. The same client_order_id returns the existing order.';

create function public.place_order(
    p_ticker text,
    p_order_type text,
    p_amount numeric,
    p_client_order_id text default null,
    p_min_receive numeric default null
)
returns public.queue
language sql
set search_path = ''
as $$
    select * from pauv.place_order(p_ticker, p_order_type, p_amount, p_client_order_id, p_min_receive)
$$;

comment on function public.place_order(text, text, numeric, text, numeric) is
'API: place a buy (p_amount in USDP) or sell (p_amount in PV) order as the signed-in user, '
'optionally with p_min_receive, the least PV a buy must receive or USDP a sell must pay '
'(else the order fails at execution and moves nothing). Returns the queued order. Errors: '
'22023 bad input, P0002 unknown ticker, 42501 not signed in, PA001 insufficient balance, '
'PA002 insufficient holdings, PA003 too many pending orders.';

grant execute on function pauv.place_order(text, text, numeric, text, numeric) to authenticated;
grant execute on function public.place_order(text, text, numeric, text, numeric) to authenticated;
