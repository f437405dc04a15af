-- Fills over Supabase Realtime Broadcast (issue 16 item 4; docs/realtime.md): when an
-- order leaves 'pending' (completed, failed or cancelled), its owner gets one message on
-- the private topic 'orders:<user id>', which only they may read (policy
-- order_fills_read_own). One statement-level trigger per UPDATE statement, so a
-- processing batch sends its messages with one set-based INSERT, not one call per order.
-- The messages go straight into realtime.messages, as realtime.send() would insert them
-- one at a time.
create function pauv.broadcast_order_fills()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into realtime.messages (topic, extension, event, payload, private)
    select
        'orders:' || n.user_id::text,
        'broadcast',
        'order_' || n.status,
        -- What the app needs to react; the trade's figures are in the user's
        -- transactions row (queue_id = order_id). Joining them here cost a tenth of the
        -- drain's throughput (docs/realtime.md).
        pg_catalog.jsonb_build_object(
            'order_id', n.id, 'ticker', n.ticker, 'order_type', n.order_type,
            'status', n.status, 'error_message', n.error_message,
            'processed_at', n.processed_at
        ),
        true
    from finished_new as n
    join finished_old as o on o.id = n.id
    where o.status = 'pending' and n.status in ('completed', 'failed', 'cancelled');
    return null;
end;
$$;

comment on function pauv.broadcast_order_fills() is
'Trigger: one Realtime Broadcast message per order that left pending in the statement, on '
'the owner''s private topic orders:<user id>.';

do $$
begin
    if pg_catalog.to_regclass('realtime.messages') is null then
        raise notice 'realtime.messages does not exist: order fills are not broadcast'
            using hint = 'Enable Realtime, then run: create trigger queue_broadcast_order_fills '
            'after update on public.queue referencing old table as finished_old new table as '
            'finished_new for each statement execute function pauv.broadcast_order_fills();';
    else
        create trigger queue_broadcast_order_fills
        after update on public.queue
        referencing old table as finished_old new table as finished_new
        for each statement execute function pauv.broadcast_order_fills();
    end if;
end;
$$;
