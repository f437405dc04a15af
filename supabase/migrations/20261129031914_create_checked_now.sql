-- One check for every function that takes p_now (issue 11 item 6): NULL used to fail deep
-- inside with 23502, and infinity or year 1900 / 3000 were accepted (trades stamped
-- infinity were never cleaned and missing from volume and candles).
create function pauv.checked_now(
    p_now timestamptz,
    p_max_age interval,
    p_max_ahead interval
)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
    -- now() is the transaction's start: the window is the same for the whole call.
    if p_now is null
        or p_now < pg_catalog.now() - p_max_age
        or p_now > pg_catalog.now() + p_max_ahead
        or not pg_catalog.isfinite(p_now) then
        raise exception 'p_now must be a finite time from % before to % after the current '
            'time (%), got %', p_max_age, p_max_ahead, pg_catalog.now(),
            coalesce(p_now::text, 'null')
            using
                errcode = 'invalid_parameter_value',
                hint = 'Leave p_now out to use the current time.';
    end if;
    return p_now;
end;
$$;

comment on function pauv.checked_now(timestamptz, interval, interval) is
'Returns p_now when it is a finite time within [now() - p_max_age, now() + p_max_ahead]; '
'otherwise raises 22023 (invalid_parameter_value). Each function taking p_now states its '
'window: the order processor 1 day back (trades land in candles and stats), 1 hour ahead '
'(clock skew); the jobs and get_ohlc_data 31 days back (re-running a job as of a past '
'time), 1 hour ahead.';

-- SECURITY INVOKER and pure: the functions that take p_now run as their callers, and
-- public.get_ohlc_data is called by everyone.
grant execute on function pauv.checked_now(timestamptz, interval, interval)
to anon, authenticated, service_role;
