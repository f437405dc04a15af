-- Processors claim a ticker with their own lock, held until commit, and no longer hold the
-- ticker's intake lock (see the previous migration): a placement of the ticker waits for a
-- processor only while it reads the intake horizon, not for the whole call. Two processors
-- still never work on one ticker at once, and a ticker with an order being inserted is
-- still left for the next call. Both entry points restated whole; besides the claim, one
-- change to process_all_pending_orders: once a call has both executed orders and met a user
-- another caller holds, it ends after the ticker at hand (has_more stays true). A call holds
-- the users it executed until it commits, and every run of another caller stops at the first
-- of them: with two callers at 1,000 orders per call, runs averaged 15 orders and a third of
-- the runs fetched executed nothing (1.27x one caller). Committing soon after a collision
-- keeps both callers' held users few; a single caller never meets one and keeps its long
-- calls.

create function pauv.claim_ticker(p_ticker text)
returns boolean
language plpgsql
volatile
set search_path = ''
as $$
begin
    -- A run trusts the horizon only because each statement reads what was committed
    -- before it started; a transaction-wide snapshot could predate a commit the horizon
    -- counts on and execute a later order first.
    if pg_catalog.current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'the order processor runs at READ COMMITTED, this transaction is %',
            upper(pg_catalog.current_setting('transaction_isolation'))
            using errcode = 'invalid_transaction_state',
                hint = 'Call it in its own transaction, or start this one with BEGIN ISOLATION LEVEL READ COMMITTED.';
    end if;
    -- An insert of the ticker in flight: leave it for the next call, holding nothing.
    if pauv.ticker_intake_horizon(p_ticker) is null then
        return false;
    end if;
    return pg_catalog.pg_try_advisory_xact_lock(
        pg_catalog.hashtext('pauv.process_ticker'), pauv.ticker_lock_id(p_ticker)
    );
end;
$$;

comment on function pauv.claim_ticker(text) is
'True when this transaction now owns the ticker for processing (a lock held until commit '
'that other processors try and skip); false when another processor owns it or an order of '
'it is being inserted right now. Refuses a transaction not at READ COMMITTED (25000).';

grant execute on function pauv.claim_ticker(text) to service_role;

create or replace function public.process_all_pending_orders(
    p_max_orders integer default 1000,
    p_max_seconds numeric default 5,
    p_now timestamptz default now()
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_started timestamptz := clock_timestamp();
    v_deadline timestamptz;
    v_start text;
    v_after text;
    v_wrapped boolean := false;
    v_ticker text;
    v_total integer := 0;
    v_ok integer := 0;
    v_failed integer := 0;
    v_row record;
begin
    perform pauv.checked_now(p_now, interval '1 day', interval '1 hour');
    if p_max_orders is null or p_max_orders < 1 or p_max_orders > 100000 then
        raise exception 'p_max_orders must be between 1 and 100000, got %', p_max_orders
            using errcode = 'invalid_parameter_value';
    end if;
    if p_max_seconds is null or not (p_max_seconds > 0 and p_max_seconds <= 50) then
        raise exception 'p_max_seconds must be greater than 0 and at most 50, got %', p_max_seconds
            using errcode = 'invalid_parameter_value';
    end if;
    v_deadline := v_started + p_max_seconds * interval '1 second';
    -- Set by pauv.process_ticker_orders when a run stops at a user another caller holds.
    perform pg_catalog.set_config('pauv.met_busy_user', 'false', true);

    -- Start at a random issuer and walk the tickers with pending orders from there (a
    -- loose index scan, one probe per ticker), wrapping around once.
    select t.ticker into v_start
    from public.issuer_trading as t
    order by t.ticker
    offset floor(random() * (select count(*) from public.issuer_trading))
    limit 1;

    loop
        exit when v_start is null or v_total >= p_max_orders or clock_timestamp() >= v_deadline;
        -- Two statements, not an OR: each probe must be an index range start.
        if v_after is null then
            v_ticker := (
                select q.ticker from public.queue as q
                where q.status = 'pending' and q.ticker >= v_start
                order by q.ticker, q.date, q.id
                limit 1
            );
        else
            v_ticker := (
                select q.ticker from public.queue as q
                where q.status = 'pending' and q.ticker > v_after
                order by q.ticker, q.date, q.id
                limit 1
            );
        end if;
        if v_ticker is null then
            exit when v_wrapped;
            v_wrapped := true;
            v_after := '';
            continue;
        end if;
        exit when v_wrapped and v_ticker >= v_start;
        v_after := v_ticker;

        -- Own the ticker unless another caller works on it or an order is being
        -- inserted for it right now; then leave it for the next call.
        continue when not pauv.claim_ticker(v_ticker);

        for v_row in
            select * from pauv.process_ticker_orders(v_ticker, p_max_orders - v_total, v_deadline, p_now)
        loop
            v_total := v_total + 1;
            if v_row.status = 'completed' then
                v_ok := v_ok + 1;
            else
                v_failed := v_failed + 1;
            end if;
        end loop;
        -- Done something and met another caller's user: commit now, releasing ours.
        exit when v_total > 0 and pg_catalog.current_setting('pauv.met_busy_user', true) = 'true';
    end loop;

    return jsonb_build_object(
        'total_processed', v_total,
        'successful', v_ok,
        'failed', v_failed,
        'has_more', (
            select q.ticker from public.queue as q
            where q.status = 'pending'
            order by q.ticker, q.date, q.id
            limit 1
        ) is not null,
        'duration_ms', round(extract(epoch from clock_timestamp() - v_started) * 1000, 1)
    );
end;
$$;

comment on function public.process_all_pending_orders(integer, numeric, timestamptz) is
'Service role only: executes pending orders, FIFO per ticker, until none is left, '
'p_max_orders are done or p_max_seconds have passed; safe to run from many callers at '
'once (a call that meets a user another caller holds ends early, so calls shorten while '
'callers collide). Returns {total_processed, successful, failed, has_more, duration_ms}; '
'callers loop while has_more. p_now stamps the trades (tests and the demo pass a time): a '
'finite time from 1 day before to 1 hour after now(), else 22023.';

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
        exit when pauv.claim_ticker(v_ticker);
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
