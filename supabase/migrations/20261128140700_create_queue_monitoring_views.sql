-- Operator views of the queue, in the internal schema (not readable by the API roles): the
-- setup guide's status summary and the lag an operator alerts on.
create view pauv.queue_status as
select
    q.status,
    count(*) as count,
    min(q.date) as oldest,
    max(q.date) as newest
from public.queue as q
group by q.status
order by q.status;

comment on view pauv.queue_status is
'Queue rows per status with the oldest and newest order date (the setup guide''s monitoring '
'query). Reads the whole queue: for dashboards, not for tight loops.';

create view pauv.queue_lag as
select
    count(*) filter (where q.status = 'pending') as pending,
    min(q.date) filter (where q.status = 'pending') as oldest_pending_at,
    now() - min(q.date) filter (where q.status = 'pending') as oldest_pending_age,
    count(*) filter (
        where q.status = 'completed' and q.processed_at > now() - interval '1 hour'
    ) as completed_last_hour,
    count(*) filter (
        where q.status = 'failed' and q.processed_at > now() - interval '1 hour'
    ) as failed_last_hour
from public.queue as q
where
    q.status = 'pending'
    or (
        q.status in ('completed', 'failed', 'cancelled')
        and q.processed_at > now() - interval '1 hour'
    );

comment on view pauv.queue_lag is
'One row: pending orders, the oldest one''s date and age (should stay under about a minute '
'with the sweeper running), orders completed and failed in the last hour.';

revoke all on pauv.queue_status, pauv.queue_lag from public, anon, authenticated;
grant select on pauv.queue_status, pauv.queue_lag to service_role;
