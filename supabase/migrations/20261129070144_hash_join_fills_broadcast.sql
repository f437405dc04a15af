-- The fills broadcast joins the statement's old and new rows. Its plan is made once per
-- session, sized for the first statement's transition tables: after a small first UPDATE
-- (one order, or a short run) every later one of 1,000 rows ran a nested loop over two
-- tuplestores, 1,000 x 1,000 (issue 15: the broadcast took 4.7 s of a 13 s drain instead of
-- 0.8 s). Without nested loops the cached plan is a hash join, linear at every size;
-- re-planning each statement (EXECUTE) cost twice the time of the join itself. Body
-- otherwise unchanged from 20261129032337.
create or replace function pauv.broadcast_order_fills()
returns trigger
language plpgsql
security definer
set search_path = ''
set enable_nestloop = off
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
'the owner''s private topic orders:<user id>; a hash join whatever the first statement''s size.';
