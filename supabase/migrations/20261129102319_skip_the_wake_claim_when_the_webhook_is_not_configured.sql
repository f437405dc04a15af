-- Without the webhook's secrets in Vault (before the operator's setup step, or a project
-- that relies on the pg_cron sweeper alone) every insert into queue claimed the wake row,
-- found nothing to send and released it: two updates of one row per insert, and the row
-- lock held until commit, so concurrent placements waited for each other. Inserts now
-- look first, by name only, whether anything could be sent, and leave the row alone when
-- not. pauv.send_process_queue_wake stays the one that decides (it also refuses blank
-- values, which only decrypting shows); this is the cheap pre-check before the claim.

create function pauv.process_queue_wake_configured()
returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
    -- The tables are looked up first: a project without pg_net or Vault is not an error.
    if to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null
        or to_regclass('vault.secrets') is null then
        return false;
    end if;
    return exists (select from vault.secrets as s where s.name = 'project_url')
        and exists (
            select from vault.secrets as s
            where s.name in ('process_queue_secret_key', 'process_queue_invoke_key')
        );
end;
$$;

comment on function pauv.process_queue_wake_configured() is
'Whether pg_net and Vault exist and Vault holds project_url and a process-queue key (by name, '
'not decrypted): false means no wake could be sent, so an insert claims none.';

revoke all on function pauv.process_queue_wake_configured() from public;

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
            if v_send and not pauv.process_queue_wake_configured() then
                -- Nothing could be sent: claim nothing, so inserts do not queue on the row.
                return null;
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
