-- Issue 16 item 3: sell a whole position in one call, even below the 0.01 PV minimum (dust
-- place_order cannot sell). The order's amount is the holding at placement, and it must
-- still be the holding at execution, so the position ends at exactly 0 with cost basis 0:
-- a close is refused while the user has any other pending order on the ticker (a pending
-- buy would add to the position, a pending sell would take part of it), and nothing placed
-- later can run before it (FIFO) or sell what it sells (it reserves the whole holding).
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
        where q.user_id = v_user_id and q.status = 'pending' and q.ticker = p_ticker
    ) then
        raise exception 'you have pending orders on %: cancel them or wait for them to execute, then close the position',
            p_ticker
            using errcode = 'PA005';
    end if;

    select p.pv_amount into v_held
    from public.portfolio as p
    where p.user_id = v_user_id and p.ticker = p_ticker;
    if coalesce(v_held, 0) = 0 then
        raise exception 'nothing to close: you hold no %', p_ticker using errcode = 'PA002';
    end if;
    if v_held > 1000000 then
        raise exception 'a position above 1000000 PV is closed in parts: sell % PV with place_order first',
            v_held - 1000000
            using errcode = 'invalid_parameter_value';
    end if;

    -- As the queue's owner: the INSERT trigger's app-level checks (made above, with the
    -- close's own rules) are skipped, and closes_position is accepted.
    insert into public.queue (
        user_id, ticker, order_type, amount_pv, client_order_id, min_receive, closes_position
    )
    values (v_user_id, p_ticker, 'sell', v_held, p_client_order_id, v_min_receive, true)
    returning * into v_order;
    return v_order;
end;
$$;

comment on function pauv.close_position(text, text, numeric) is
'Queues a sell of the signed-in user''s whole holding of p_ticker (any size from 0.00000001 '
'to 1000000 PV), with an optional slippage limit in USDP; refused while the user has another '
'pending order on the ticker. The same client_order_id returns the existing order.';

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
'API: sell your whole holding of p_ticker, even below the 0.01 PV minimum of place_order; '
'the position ends at exactly 0 (a dust position may pay 0 USDP). Optional p_min_receive: '
'the least USDP it must pay. Returns the queued order. Errors: 22023 bad input, P0002 '
'unknown ticker, 42501 not signed in, PA002 nothing held, PA003 too many pending orders, '
'PA005 another pending order of yours on the ticker.';

grant execute on function pauv.close_position(text, text, numeric) to authenticated;
grant execute on function public.close_position(text, text, numeric) to authenticated;
