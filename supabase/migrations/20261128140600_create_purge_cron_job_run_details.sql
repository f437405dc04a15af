-- pg_cron never purges its own history (cron.job_run_details): the job
-- purge-cron-job-run-details keeps the last 7 days. PL/pgSQL, so this migration succeeds
-- even where pg_cron is not installed (the body is only resolved when it runs).
create function pauv.purge_cron_job_run_details(
    p_retention interval default interval '7 days',
    p_now timestamptz default now()
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_deleted integer;
begin
    if p_retention is null or p_retention < interval '1 hour' then
        raise exception 'p_retention must be at least 1 hour, got %',
            coalesce(p_retention::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;

    -- A run that never finished (server crash) has no end_time: its start_time counts.
    delete from cron.job_run_details as d
    where coalesce(d.end_time, d.start_time) < p_now - p_retention;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end;
$$;

comment on function pauv.purge_cron_job_run_details(interval, timestamptz) is
'Job purge-cron-job-run-details (daily 03:30 UTC): deletes pg_cron run history that ended '
'(or, never finished, started) before p_now - p_retention (7 days); returns the rows deleted.';
