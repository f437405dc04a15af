-- Coalesced wakes (issue 11 item 3): the webhook sends a request only when none is queued
-- and no drain runs, so invocations follow the work, not the INSERT rate. The function
-- reports its drain's start and end; the end re-checks the queue under a lock, so no order
-- placed during a drain is left to the sweeper.
create table pauv.process_queue_wake_state (
    id boolean primary key default true check (id),
    wake_requested_at timestamptz,
    drain_id uuid,
    drain_seen_at timestamptz,
    wake_timeout interval not null default '10 seconds' check (wake_timeout > interval '0'),
    drain_timeout interval not null default '45 seconds' check (drain_timeout > interval '0')
);

comment on table pauv.process_queue_wake_state is
'One row: whether a wake of the process-queue function is queued (wake_requested_at) or a '
'drain runs (drain_id, last seen at drain_seen_at). While either is fresh, inserts send no '
'new request; past wake_timeout / drain_timeout (the function unreachable or killed) the '
'next insert sends one again, and the pg_cron sweeper covers the gap.';
comment on column pauv.process_queue_wake_state.wake_timeout is
'How long a queued wake stands for the function before an insert may send another one.';
comment on column pauv.process_queue_wake_state.drain_timeout is
'How long a drain counts as running after its last sign of life (its start, or an end '
'that found more work); above the function''s 25 s budget plus one 5 s call.';

insert into pauv.process_queue_wake_state default values;
revoke all on pauv.process_queue_wake_state from public;

-- Placements take this lock shared (until they commit) before reading the state; a drain
-- ends under it exclusively, so it sees every order whose insert saw the drain running.
create function pauv.lock_process_queue_wake(p_exclusive boolean)
returns void
language plpgsql
set search_path = ''
as $$
begin
    -- The two-key form: its key space never meets single-key locks taken elsewhere.
    if p_exclusive then
        perform pg_catalog.pg_advisory_xact_lock(
            pg_catalog.hashtext('pauv.process_queue'), pg_catalog.hashtext('wake')
        );
    else
        perform pg_catalog.pg_advisory_xact_lock_shared(
            pg_catalog.hashtext('pauv.process_queue'), pg_catalog.hashtext('wake')
        );
    end if;
end;
$$;

comment on function pauv.lock_process_queue_wake(boolean) is
'Takes the wake lock until the transaction ends: shared for inserts into queue, exclusive '
'for the end of a drain.';

revoke all on function pauv.lock_process_queue_wake(boolean) from public;

create or replace function pauv.notify_process_queue()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_pending bigint;
    v_first_record jsonb;
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_send boolean;
    v_claimed boolean := false;
begin
    begin
        select count(*) into v_pending
        from new_orders as o
        where o.status = 'pending';
        if v_pending = 0 then
            return null;
        end if;

        perform pauv.lock_process_queue_wake(false);
        if pg_catalog.current_setting('transaction_isolation') <> 'read committed' then
            -- This snapshot may predate the end of a drain: it cannot prove one will see
            -- the order, so it wakes the function without coalescing.
            v_send := true;
        else
            -- Read first, so a placement during a drain takes no row lock at all.
            select
                (w.wake_requested_at is null or w.wake_requested_at <= v_now - w.wake_timeout)
                and (w.drain_id is null or w.drain_seen_at <= v_now - w.drain_timeout)
            into v_send
            from pauv.process_queue_wake_state as w
            where w.id;  -- by the key: callers such as place_order run with enable_seqscan off
            if not found then  -- the row was deleted: put it back, then claim as usual
                insert into pauv.process_queue_wake_state default values on conflict (id) do nothing;
                v_send := true;
            end if;
            if v_send then
                -- Of concurrent inserts that all saw no wake, the first to commit claims it;
                -- the others re-check after it and find it queued.
                update pauv.process_queue_wake_state as w
                set wake_requested_at = v_now
                where
                    w.id
                    and (w.wake_requested_at is null or w.wake_requested_at <= v_now - w.wake_timeout)
                    and (w.drain_id is null or w.drain_seen_at <= v_now - w.drain_timeout);
                v_send := found;
                v_claimed := found;
            end if;
        end if;
        if not coalesce(v_send, true) then
            return null;
        end if;

        select to_jsonb(o) into v_first_record
        from new_orders as o
        where o.status = 'pending'
        order by o.id
        limit 1;

        if pauv.send_process_queue_wake(jsonb_build_object(
            'type', tg_op,
            'table', tg_table_name,
            'schema', tg_table_schema,
            'record', v_first_record,
            'old_record', null,
            'pending_count', v_pending
        )) is null and v_claimed then
            -- Nothing configured, nothing sent: the next insert must not wait for a wake.
            update pauv.process_queue_wake_state as w set wake_requested_at = null where w.id;
        end if;
    exception when others then
        -- Waking the processor is best effort: an order must never fail because of it.
        raise warning 'process-queue-webhook sent nothing: % (SQLSTATE %)', sqlerrm, sqlstate;
    end;
    return null;
end;
$$;

comment on function pauv.notify_process_queue() is
'Statement-level AFTER INSERT trigger on public.queue: when the statement inserted pending '
'orders and no wake is queued nor drain running (pauv.process_queue_wake_state), claims '
'the wake and sends it through pauv.send_process_queue_wake with a webhook-shaped body '
'(record = the first pending row inserted, pending_count = how many). Outside READ '
'COMMITTED it always sends. Never raises (SECURITY DEFINER: inserting roles cannot read Vault).';

create function pauv.begin_process_queue_drain()
returns uuid
language sql
security definer
set search_path = ''
as $$
    insert into pauv.process_queue_wake_state as w (id, drain_id, drain_seen_at)
    values (true, gen_random_uuid(), pg_catalog.clock_timestamp())
    on conflict (id) do update
        set
            wake_requested_at = null,
            drain_id = excluded.drain_id,
            drain_seen_at = excluded.drain_seen_at
    returning w.drain_id
$$;

comment on function pauv.begin_process_queue_drain() is
'Called by the process-queue function before it drains: the queued wake is consumed and '
'this drain now runs (inserts send no request meanwhile). Returns the drain id to pass to '
'end_process_queue_drain. A later begin takes over from an earlier one.';

create function pauv.end_process_queue_drain(p_drain_id uuid, p_stopped_by text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_current uuid;
    v_now timestamptz;
    v_pending boolean;
begin
    if p_drain_id is null then
        raise exception 'p_drain_id is required: pass what begin_process_queue_drain() returned'
            using errcode = 'invalid_parameter_value';
    end if;
    if p_stopped_by is null or p_stopped_by not in ('drained', 'time_budget', 'failed') then
        raise exception 'p_stopped_by must be drained, time_budget or failed, got %',
            coalesce(p_stopped_by, 'null')
            using errcode = 'invalid_parameter_value';
    end if;

    -- Waits for every insert that saw this drain running, then sees its orders.
    perform pauv.lock_process_queue_wake(true);
    v_now := pg_catalog.clock_timestamp();
    select w.drain_id into v_current
    from pauv.process_queue_wake_state as w
    where w.id
    for update;
    if v_current is distinct from p_drain_id then
        return false;  -- a later drain took over: it owns the queue now
    end if;

    v_pending := exists (select from public.queue as q where q.status = 'pending');
    if v_pending and p_stopped_by = 'drained' then
        update pauv.process_queue_wake_state as w set drain_seen_at = v_now where w.id;
        return true;
    end if;

    -- time_budget with work left: hand over to a fresh invocation now. failed: the next
    -- wake may come only after wake_timeout, so a broken function is not re-invoked in a loop.
    update pauv.process_queue_wake_state as w
    set
        drain_id = null,
        drain_seen_at = null,
        wake_requested_at = case
            when p_stopped_by = 'failed' or v_pending then v_now
        end
    where w.id;
    if v_pending and p_stopped_by = 'time_budget' then
        perform pauv.send_process_queue_wake(jsonb_build_object(
            'type', 'DRAIN_CONTINUE', 'table', 'queue', 'schema', 'public',
            'record', null, 'old_record', null, 'pending_count', null
        ));
    end if;
    return false;
end;
$$;

comment on function pauv.end_process_queue_drain(uuid, text) is
'Called by the process-queue function when it stops (p_stopped_by: drained, time_budget '
'or failed). Returns true when orders arrived meanwhile and a drained caller must go on; '
'otherwise the drain ends: with work left after time_budget it queues a new wake at once; '
'after failed, inserts send no new wake for wake_timeout. False also when a later drain '
'took over.';

-- The function reaches the database through the API, which sees schema public only.
create function public.begin_process_queue_drain()
returns uuid
language sql
set search_path = ''
as $$
    select pauv.begin_process_queue_drain()
$$;

comment on function public.begin_process_queue_drain() is
'API (service_role, the process-queue function): see pauv.begin_process_queue_drain.';

create function public.end_process_queue_drain(p_drain_id uuid, p_stopped_by text)
returns boolean
language sql
set search_path = ''
as $$
    select pauv.end_process_queue_drain(p_drain_id, p_stopped_by)
$$;

comment on function public.end_process_queue_drain(uuid, text) is
'API (service_role, the process-queue function): see pauv.end_process_queue_drain.';

revoke all on function pauv.begin_process_queue_drain() from public;
revoke all on function pauv.end_process_queue_drain(uuid, text) from public;
revoke all on function public.begin_process_queue_drain() from public;
revoke all on function public.end_process_queue_drain(uuid, text) from public;
grant execute on function pauv.begin_process_queue_drain() to service_role;
grant execute on function pauv.end_process_queue_drain(uuid, text) to service_role;
grant execute on function public.begin_process_queue_drain() to service_role;
grant execute on function public.end_process_queue_drain(uuid, text) to service_role;
