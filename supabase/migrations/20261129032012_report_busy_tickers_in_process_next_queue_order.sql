-- process_next_queue_order() said "no pending order" while orders were pending on tickers
-- another caller was processing (issue 11 item 10): a caller polling it would conclude the
-- queue was empty. It now says the tickers are busy, and how many orders it passed over.
-- It also checks p_now, as the other processor entry points do (issue 11 item 6).
create or replace function public.process_next_queue_order(p_now timestamptz default now())
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_ticker text;
    v_passed integer := 0;
    v_row record;
begin
    perform pauv.checked_now(p_now, interval '1 day', interval '1 hour');

    -- The oldest pending order whose ticker no other caller is working on.
    for v_ticker in
        select q.ticker from public.queue as q
        where q.status = 'pending'
        order by q.date, q.id
        limit 1000
    loop
        exit when pg_catalog.pg_try_advisory_xact_lock(1885435254, pauv.ticker_lock_id(v_ticker));
        v_ticker := null;
        v_passed := v_passed + 1;
    end loop;
    if v_ticker is null and v_passed > 0 then
        return jsonb_build_object(
            'processed', false,
            'reason', 'pending orders wait, but their tickers are busy in another caller, retry',
            'busy_orders', v_passed
        );
    end if;
    if v_ticker is null then
        return jsonb_build_object('processed', false, 'reason', 'no pending order');
    end if;

    select * into v_row from pauv.process_ticker_orders(v_ticker, 1, 'infinity', p_now);
    if not found then
        return jsonb_build_object('processed', false, 'reason', 'order''s user is busy, retry');
    end if;
    return jsonb_build_object(
        'processed', true,
        'order_id', v_row.order_id,
        'order_type', v_row.order_type,
        'status', v_row.status,
        'pv_amount', v_row.pv_amount,
        'usdp_amount', v_row.usdp_amount,
        'transaction_id', v_row.transaction_id,
        'error', v_row.error
    );
end;
$$;

comment on function public.process_next_queue_order(timestamptz) is
'Service role only: executes the oldest pending order (of a ticker no other caller is '
'working on). Returns {processed, order_id, order_type, status, pv_amount, usdp_amount, '
'transaction_id, error}; {processed: false, reason} when nothing is pending, when every '
'pending order''s ticker is busy in another caller (with busy_orders, the number passed '
'over, at most 1000) or when the order''s user is busy. p_now: a finite time from 1 day '
'before to 1 hour after now(), else 22023.';
