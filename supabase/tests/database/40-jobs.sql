-- Scheduled jobs: their tables are public market data (RLS on, read-only for the API
-- roles), the job functions run for service_role and postgres only, charts for everyone,
-- operator views stay internal, and pg_cron holds the guide's jobs.
begin;
select plan(25);

select has_table('public', 'issuer_stats_cache', 'issuer_stats_cache exists');
select columns_are(
    'public', 'issuer_stats_cache',
    array[
        'ticker', 'current_price', 'price_1h_change', 'price_24h_change', 'price_7d_change',
        'volume_24h', 'holders', 'market_cap', 'circulating_supply', 'cached_at'
    ],
    'issuer_stats_cache has exactly the app''s columns'
);
select has_table('public', 'price_candles_hourly', 'price_candles_hourly exists');
select ok(
    (
        select bool_and(c.relrowsecurity) from pg_class as c
        where c.oid in (
            'public.issuer_stats_cache'::regclass,
            'public.price_candles_hourly'::regclass
        )
    ),
    'RLS is on for the job tables'
);

select table_privs_are(
    'public', 'issuer_stats_cache', 'anon', array['SELECT'], 'anon only reads the stats cache'
);
select table_privs_are(
    'public', 'issuer_stats_cache', 'authenticated', array['SELECT'],
    'authenticated only reads the stats cache'
);
select table_privs_are(
    'public', 'price_candles_hourly', 'anon', array['SELECT'], 'anon only reads the candles'
);
select table_privs_are(
    'public', 'price_candles_hourly', 'authenticated', array['SELECT'],
    'authenticated only reads the candles'
);

select ok(
    not has_function_privilege('anon', 'public.refresh_issuer_stats_cache(timestamptz)', 'execute')
    and not has_function_privilege(
        'authenticated', 'public.refresh_issuer_stats_cache(timestamptz)', 'execute'
    ),
    'the API roles cannot refresh the stats cache'
);
select ok(
    has_function_privilege(
        'service_role', 'public.refresh_issuer_stats_cache(timestamptz)', 'execute'
    ),
    'service_role can refresh the stats cache'
);
select ok(
    not has_function_privilege(
        'anon', 'public.snapshot_hourly_prices(interval, timestamptz)', 'execute'
    )
    and not has_function_privilege(
        'authenticated', 'public.snapshot_hourly_prices(interval, timestamptz)', 'execute'
    ),
    'the API roles cannot write candles'
);
select ok(
    not has_function_privilege(
        'anon', 'public.cleanup_old_queue_entries(interval, integer, timestamptz)', 'execute'
    )
    and not has_function_privilege(
        'authenticated', 'public.cleanup_old_queue_entries(interval, integer, timestamptz)',
        'execute'
    ),
    'the API roles cannot clean up the queue'
);
select ok(
    has_function_privilege(
        'service_role', 'public.snapshot_hourly_prices(interval, timestamptz)', 'execute'
    )
    and has_function_privilege(
        'service_role', 'public.cleanup_old_queue_entries(interval, integer, timestamptz)',
        'execute'
    ),
    'service_role can run the candle and cleanup jobs'
);
select ok(
    has_function_privilege(
        'anon', 'public.get_ohlc_data(text, text, timestamptz, timestamptz, timestamptz)',
        'execute'
    )
    and has_function_privilege(
        'authenticated', 'public.get_ohlc_data(text, text, timestamptz, timestamptz, timestamptz)',
        'execute'
    ),
    'everyone can read charts'
);
select ok(
    not has_function_privilege('anon', 'pauv.schedule_jobs()', 'execute')
    and not has_function_privilege('authenticated', 'pauv.schedule_jobs()', 'execute')
    and not has_function_privilege('service_role', 'pauv.schedule_jobs()', 'execute'),
    'only postgres schedules jobs'
);
select ok(
    not has_function_privilege('anon', 'pauv.sweep_pending_orders(numeric)', 'execute')
    and not has_function_privilege(
        'anon', 'pauv.run_cleanup_old_queue_entries(interval, integer, integer)', 'execute'
    )
    and not has_function_privilege(
        'anon', 'pauv.purge_cron_job_run_details(interval, timestamptz)', 'execute'
    ),
    'anon cannot run the job procedures'
);
select is(
    (
        -- Ordered by the signature (an "order by 1" in an aggregate orders by a constant).
        select array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text)
        from pg_proc as p
        where
            p.pronamespace = 'pauv'::regnamespace
            and has_function_privilege('anon', p.oid, 'execute')
    ),
    array[
        'pauv.buy_quantity(numeric,numeric,numeric)',
        'pauv.check_order_input(text,text,numeric)',
        'pauv.checked_now(timestamp with time zone,interval,interval)',
        'pauv.compute_candles(text,interval,timestamp with time zone,timestamp with time zone)',
        'pauv.sell_payout(numeric,numeric,numeric)'
    ],
    'the internal functions anon may run: the p_now check and the candle computation behind '
    || 'get_ohlc_data, and the pure functions behind quote_order (none reads a private table)'
);
select ok(
    (
        select p.prosecdef from pg_proc as p
        where p.oid = 'pauv.compute_candles(text, interval, timestamptz, timestamptz)'::regprocedure
    ),
    'compute_candles is SECURITY DEFINER (it aggregates trades the API roles cannot read)'
);
select is_empty(
    $$select p.oid::regprocedure from pg_proc as p
      where p.pronamespace = 'public'::regnamespace and p.prosecdef$$,
    'no SECURITY DEFINER function in public'
);

select ok(
    not has_table_privilege('anon', 'pauv.queue_status', 'select')
    and not has_table_privilege('authenticated', 'pauv.queue_status', 'select'),
    'the API roles cannot read the queue status view'
);
select ok(
    not has_table_privilege('anon', 'pauv.queue_lag', 'select')
    and not has_table_privilege('authenticated', 'pauv.queue_lag', 'select'),
    'the API roles cannot read the queue lag view'
);
select ok(
    not has_table_privilege('anon', 'pauv.cron_job_health', 'select')
    and not has_table_privilege('authenticated', 'pauv.cron_job_health', 'select'),
    'the API roles cannot read the job health view'
);
select is_empty(
    $$select c.relname from pg_class as c
      where c.relnamespace = 'pauv'::regnamespace and c.relkind in ('r', 'v', 'm')
        and (has_table_privilege('anon', c.oid, 'select')
            or has_table_privilege('authenticated', c.oid, 'select'))$$,
    'nothing in pauv is readable by the API roles'
);

select is(
    (
        select array_agg(format('%s %s', j.jobname, j.schedule) order by j.jobname)
        from cron.job as j
        where j.jobname in (
            'refresh-issuer-stats-cache', 'hourly-price-snapshot', 'cleanup-old-queue-entries'
        )
    ),
    array[
        'cleanup-old-queue-entries 0 3 * * *',
        'hourly-price-snapshot 0 * * * *',
        'refresh-issuer-stats-cache */5 * * * *'
    ],
    'the guide''s three jobs are scheduled with its schedules'
);
select is(
    (
        select count(*)::integer from cron.job
        where jobname like 'process-pending-orders-%'
    ),
    1,
    'one sweeper job'
);

select * from finish(); -- noqa: AM04
rollback;
