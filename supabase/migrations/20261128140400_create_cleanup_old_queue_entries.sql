-- The job cleanup-old-queue-entries: deletes finished queue rows (completed, failed,
-- cancelled) older than the retention in bounded batches, committing after each, so no lock
-- or transaction lasts long. Pending work and the transactions table are never touched.
create function public.cleanup_old_queue_entries(
    p_retention interval default interval '7 days',
    p_batch_size integer default 10000,
    p_now timestamptz default now()
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_completed integer;
    v_failed integer;
    v_cancelled integer;
    v_has_more boolean;
begin
    if p_retention is null or p_retention < interval '1 hour' then
        raise exception 'p_retention must be at least 1 hour, got %',
            coalesce(p_retention::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if p_batch_size is null or p_batch_size < 1 or p_batch_size > 100000 then
        raise exception 'p_batch_size must be from 1 to 100000, got %',
            coalesce(p_batch_size::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;

    -- Oldest first along queue_finished_processed_at_idx; rows another session holds are
    -- left for the next batch.
    with doomed as (
        select q.id
        from public.queue as q
        where
            q.status in ('completed', 'failed', 'cancelled')
            and q.processed_at < p_now - p_retention
        order by q.processed_at
        limit p_batch_size
        for update skip locked
    ),

    deleted as (
        delete from public.queue as q
        using doomed
        where q.id = doomed.id
        returning q.status
    )

    select
        count(*) filter (where deleted.status = 'completed')::integer,
        count(*) filter (where deleted.status = 'failed')::integer,
        count(*) filter (where deleted.status = 'cancelled')::integer
    into v_completed, v_failed, v_cancelled
    from deleted;

    v_has_more := exists (
        select
        from public.queue as q
        where
            q.status in ('completed', 'failed', 'cancelled')
            and q.processed_at < p_now - p_retention
    );

    return jsonb_build_object(
        'deleted', v_completed + v_failed + v_cancelled,
        'completed', v_completed,
        'failed', v_failed,
        'cancelled', v_cancelled,
        'has_more', v_has_more
    );
end;
$$;

comment on function public.cleanup_old_queue_entries(interval, integer, timestamptz) is
'Deletes one batch (at most p_batch_size, oldest first) of completed, failed and cancelled '
'queue rows whose processed_at is older than p_now - p_retention. Never a pending or '
'processing order, never a transactions row. Returns {deleted, completed, failed, cancelled, '
'has_more}; call again while has_more, or use pauv.run_cleanup_old_queue_entries().';

grant execute on function public.cleanup_old_queue_entries(interval, integer, timestamptz)
to service_role;

-- A procedure so it can commit between batches. No SET clause: PostgreSQL forbids
-- transaction control in a procedure that has one; every name is schema-qualified instead.
create procedure pauv.run_cleanup_old_queue_entries(
    p_retention interval default interval '7 days',
    p_batch_size integer default 10000,
    p_max_batches integer default 1000
)
language plpgsql
as $$
declare
    v_now constant timestamptz := pg_catalog.now();
    v_batch jsonb;
    v_batches integer := 0;
    v_deleted bigint := 0;
begin
    loop
        v_batch := public.cleanup_old_queue_entries(p_retention, p_batch_size, v_now);
        v_batches := v_batches + 1;
        v_deleted := v_deleted + (v_batch ->> 'deleted')::bigint;
        commit;
        exit when not (v_batch ->> 'has_more')::boolean or v_batches >= p_max_batches;
    end loop;
    raise notice 'cleanup-old-queue-entries: deleted % queue rows in % batches%', v_deleted,
        v_batches,
        case when (v_batch ->> 'has_more')::boolean then ', more left for the next run' else '' end;
end;
$$;

comment on procedure pauv.run_cleanup_old_queue_entries is
'Job cleanup-old-queue-entries (daily 03:00 UTC): calls public.cleanup_old_queue_entries '
'batch after batch, committing after each, until nothing older than p_retention is left or '
'p_max_batches were done. Run it outside a transaction block: call '
'pauv.run_cleanup_old_queue_entries();';

grant execute on procedure pauv.run_cleanup_old_queue_entries
to service_role;
