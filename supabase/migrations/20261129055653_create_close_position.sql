-- Issue 16 item 3: sell the whole unreserved holding in one call, even below the 0.01 PV
-- minimum (dust place_order cannot sell). The order's amount is the holding net of the
-- user's pending sells of the ticker; those run before it (FIFO), so at execution it is the
-- whole holding, and the position ends at exactly 0 with cost basis 0. A pending buy of the
-- ticker would add to the position first, so a close is refused while one is pending;
-- nothing placed later runs before it (FIFO) or sells what it sells (it is reserved).
create function pauv.close_position(
    p_ticker text,
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
    v_min_receive numeric;
    v_order public.queue;
    v_held numeric;
    v_reserved numeric;
begin
    if v_user_id is null then
        raise exception 'sign in to close a position' using errcode = 'insufficient_privilege';
    end if;
    if not exists (select from public.issuer_trading as t where t.ticker = p_ticker) then
        raise exception 'unknown ticker %', coalesce(p_ticker, 'null') using errcode = 'no_data_found';
    end if;
    v_min_receive := pauv.check_min_receive('sell', p_min_receive);

    v_order := pauv.begin_order_intake(v_user_id, p_client_order_id);
    if v_order.id is not null then
        return v_order;
    end if;

    if exists (
        select from public.queue as q
        where
            q.user_id = v_user_id and q.status = 'pending' and q.ticker = p_ticker
            and q.order_type = 'buy'
    ) then
        raise exception 'you have a pending buy of %: cancel it or wait for it to execute, then close the position',
            p_ticker
            using errcode = 'PA005';
    end if;

    -- One statement, one snapshot, as in place_order.
    select
        coalesce((
            select p.pv_amount from public.portfolio as p
            where p.user_id = v_user_id and p.ticker = p_ticker
        ), 0),
        coalesce((
            select sum(q.amount_pv) from public.queue as q
            where
                q.user_id = v_user_id and q.status = 'pending' and q.ticker = p_ticker
                and q.order_type = 'sell'
        ), 0)
    into v_held, v_reserved;
    if v_held - v_reserved <= 0 then
        raise exception 'nothing to close: % % held, % reserved by your pending sells',
            v_held, p_ticker, v_reserved
            using errcode = 'PA002';
    end if;
    if v_held - v_reserved > 1000000 then
        raise exception 'a position above 1000000 PV is closed in parts: sell % PV with place_order first',
            v_held - v_reserved - 1000000
            using errcode = 'invalid_parameter_value';
    end if;

    -- As the queue's owner: the INSERT trigger's app-level checks (made above, with the
    -- close's own rules) are skipped, and closes_position is accepted.
    insert into public.queue (
        user_id, ticker, order_type, amount_pv, client_order_id, min_receive, closes_position
    )
    values (v_user_id, p_ticker, 'sell', v_held - v_reserved, p_client_order_id, v_min_receive, true)
    returning * into v_order;
    return v_order;
end;
$$;

comment on function pauv.close_position(text, text, numeric) is
'Queues a sell of the signed-in user''s whole holding of p_ticker net of their pending sells '
'(any size from 0.00000001 to 1000000 PV), with an optional slippage limit in USDP; refused '
'while the user has a pending buy of the ticker. The same client_order_id returns the '
'existing order.';

create function public.close_position(
    p_ticker text,
    p_client_order_id text default null,
    p_min_receive numeric default null
)
returns public.queue
language sql
set search_path = ''
as $$
    select * from pauv.close_position(p_ticker, p_client_order_id, p_min_receive)
$$;

comment on function public.close_position(text, text, numeric) is
'API: sell your whole holding of p_ticker (net of your pending sells of it, which execute '
'first), even below the 0.01 PV minimum of place_order; the position ends at exactly 0 (a '
'dust position may pay 0 USDP). Optional p_min_receive: the least USDP it must pay. '
'Returns the queued order. Errors: 22023 bad input, P0002 unknown ticker, 42501 not signed '
'in, PA002 nothing left to close, PA003 too many pending orders, PA005 a pending buy of '
'yours on the ticker.';

grant execute on function pauv.close_position(text, text, numeric) to authenticated;
grant execute on function public.close_position(text, text, numeric) to authenticated;
