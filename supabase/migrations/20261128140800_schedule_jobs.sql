-- Schedules the background jobs with pg_cron, idempotently: a job is (re)scheduled only when
-- missing or different, so pushing again or `db reset` never duplicates one. Without pg_cron
-- the push still succeeds with a warning; `select * from pauv.schedule_jobs();` later does it.
create function pauv.schedule_jobs()
returns table (jobname text, schedule text, command text, action text)
language plpgsql
set search_path = ''
as $$
declare
    v_job record;
    v_existing record;
begin
    if not exists (select from pg_catalog.pg_extension as e where e.extname = 'pg_cron') then
        raise warning 'pg_cron is not enabled, so the Pauv background jobs are not scheduled'
            using hint = 'Enable pg_cron (Supabase Dashboard > Database > Extensions > pg_cron, '
            'or as a superuser in the database named by cron.database_name: create extension '
            'pg_cron;), then run as postgres: select * from pauv.schedule_jobs();';
        return;
    end if;

    -- The job-health view reads pg_cron's tables, so it can only exist with pg_cron.
    execute $view$
        create or replace view pauv.cron_job_health as
        select
            j.jobid,
            j.jobname,
            j.schedule,
            j.command,
            j.active,
            last_run.status as last_status,
            last_run.start_time as last_start,
            last_run.end_time as last_end,
            last_run.end_time - last_run.start_time as last_duration,
            last_failure.return_message as last_error,
            last_failure.start_time as last_error_at,
            coalesce(recent.runs_24h, 0) as runs_24h,
            coalesce(recent.failures_24h, 0) as failures_24h
        from cron.job as j
        left join lateral (
            select d.status, d.start_time, d.end_time
            from cron.job_run_details as d
            where d.jobid = j.jobid
            order by d.runid desc
            limit 1
        ) as last_run on true
        left join lateral (
            select d.return_message, d.start_time
            from cron.job_run_details as d
            where d.jobid = j.jobid and d.status = 'failed'
            order by d.runid desc
            limit 1
        ) as last_failure on true
        left join lateral (
            select
                count(*) as runs_24h,
                count(*) filter (where d.status = 'failed') as failures_24h
            from cron.job_run_details as d
            where d.jobid = j.jobid and d.start_time > now() - interval '24 hours'
        ) as recent on true
        order by j.jobname
    $view$;
    execute $comment$
        comment on view pauv.cron_job_health is
        'One row per pg_cron job of the viewing role (pg_cron''s row security): schedule, '
        'active, the last run''s status, start, end and duration, the last failure''s message '
        'and time, runs and failures in the last 24 hours.'
    $comment$;
    execute 'revoke all on pauv.cron_job_health from public, anon, authenticated';
    execute 'grant select on pauv.cron_job_health to service_role';

    for v_job in
        select j.*
        from (
            values
            ('refresh-issuer-stats-cache', '*/5 * * * *',
                'select public.refresh_issuer_stats_cache()'),
            ('hourly-price-snapshot', '0 * * * *',
                'select public.snapshot_hourly_prices()'),
            ('cleanup-old-queue-entries', '0 3 * * *',
                'call pauv.run_cleanup_old_queue_entries()'),
            ('process-pending-orders-sweeper', '* * * * *',
                'call pauv.sweep_pending_orders()'),
            ('purge-cron-job-run-details', '30 3 * * *',
                'select pauv.purge_cron_job_run_details()')
        ) as j (jobname, schedule, command)
    loop
        if exists (
            select from cron.job as c
            where c.jobname = v_job.jobname and c.username <> current_user
        ) then
            raise warning 'a job named % also exists for another role: run pauv.schedule_jobs() '
                'as the role that owns the jobs (postgres) or jobs get duplicated',
                v_job.jobname;
        end if;

        select c.schedule, c.command into v_existing
        from cron.job as c
        where c.jobname = v_job.jobname and c.username = current_user;

        jobname := v_job.jobname;
        schedule := v_job.schedule;
        command := v_job.command;
        if not found then
            perform cron.schedule(v_job.jobname, v_job.schedule, v_job.command);
            action := 'scheduled';
        elsif (v_existing.schedule, v_existing.command)
            is distinct from (v_job.schedule, v_job.command) then
            -- cron.schedule replaces the job of that name for the same role.
            perform cron.schedule(v_job.jobname, v_job.schedule, v_job.command);
            action := 'updated';
        else
            action := 'unchanged';
        end if;
        return next;
    end loop;
end;
$$;

comment on function pauv.schedule_jobs() is
'Schedules (or updates) the pg_cron jobs refresh-issuer-stats-cache (*/5 * * * *), '
'hourly-price-snapshot (0 * * * *), cleanup-old-queue-entries (0 3 * * *), '
'process-pending-orders-sweeper (* * * * *) and purge-cron-job-run-details (30 3 * * *) for '
'the calling role, and creates the view pauv.cron_job_health. Idempotent; an unchanged job is '
'left alone (its active flag too). Without pg_cron it only warns. Run as postgres.';

select
    s.jobname,
    s.action
from pauv.schedule_jobs() as s;
