-- p_now is checked by the jobs and get_ohlc_data (issue 11 item 6): NULL, infinity or year
-- 1900 / 3000 are refused with 22023 (a future p_now made cleanup delete rows still within
-- their retention, and candles of hours not yet closed). 31 days back allows re-running a
-- job as of a past time; one hour ahead allows clock skew.

create or replace function public.refresh_issuer_stats_cache(p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_refreshed integer;
begin
    perform pauv.checked_now(p_now, interval '31 days', interval '1 hour');
    -- Two refreshes at once would upsert the same rows in any order: serialise them.
    -- The two-key form: its key space never meets single-key locks taken elsewhere.
    perform pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtext('pauv.jobs'), pg_catalog.hashtext('refresh_issuer_stats_cache')
    );

    -- One statement, so readers see the old cache or the new one, never a mix. Plain reads
    -- of issuer_trading, portfolio and transactions take no row locks: trading goes on.
    with listed as (
        select
            t.ticker,
            t.current_price,
            t.current_supply,
            t.total_usdp,
            t.base_price
        from public.issuer_trading as t
    ),

    volume as (
        select
            tx.ticker,
            sum(tx.amount_usdp) as volume_24h
        from public.transactions as tx
        where
            tx.status = 'completed'
            and tx.date > p_now - interval '24 hours'
            and tx.date <= p_now
        group by tx.ticker
    ),

    holders as (
        select
            p.ticker,
            count(*)::integer as holders
        from public.portfolio as p
        where p.pv_amount > 0
        group by p.ticker
    ),

    computed as (
        select
            l.ticker,
            l.current_price,
            pauv.percent_change(l.current_price, coalesce(h1.price, l.base_price))
                as price_1h_change,
            pauv.percent_change(l.current_price, coalesce(h24.price, l.base_price))
                as price_24h_change,
            pauv.percent_change(l.current_price, coalesce(d7.price, l.base_price))
                as price_7d_change,
            coalesce(v.volume_24h, 0) as volume_24h,
            coalesce(hd.holders, 0) as holders,
            l.total_usdp as market_cap,
            l.current_supply as circulating_supply
        from listed as l
        left join volume as v on l.ticker = v.ticker
        left join holders as hd on l.ticker = hd.ticker
        left join lateral (
            select ph.price
            from public.price_history as ph
            where ph.ticker = l.ticker and ph.timestamp <= p_now - interval '1 hour'
            order by ph.timestamp desc, ph.id desc
            limit 1
        ) as h1 on true
        left join lateral (
            select ph.price
            from public.price_history as ph
            where ph.ticker = l.ticker and ph.timestamp <= p_now - interval '24 hours'
            order by ph.timestamp desc, ph.id desc
            limit 1
        ) as h24 on true
        left join lateral (
            select ph.price
            from public.price_history as ph
            where ph.ticker = l.ticker and ph.timestamp <= p_now - interval '7 days'
            order by ph.timestamp desc, ph.id desc
            limit 1
        ) as d7 on true
    ),

    upserted as (
        insert into public.issuer_stats_cache as c (
            ticker, current_price, price_1h_change, price_24h_change, price_7d_change,
            volume_24h, holders, market_cap, circulating_supply, cached_at
        )
        select
            computed.ticker,
            computed.current_price,
            computed.price_1h_change,
            computed.price_24h_change,
            computed.price_7d_change,
            computed.volume_24h,
            computed.holders,
            computed.market_cap,
            computed.circulating_supply,
            p_now
        from computed
        order by computed.ticker
        on conflict (ticker) do update
            set
                current_price = excluded.current_price,
                price_1h_change = excluded.price_1h_change,
                price_24h_change = excluded.price_24h_change,
                price_7d_change = excluded.price_7d_change,
                volume_24h = excluded.volume_24h,
                holders = excluded.holders,
                market_cap = excluded.market_cap,
                circulating_supply = excluded.circulating_supply,
                cached_at = excluded.cached_at
        returning c.ticker
    ),

    delisted as (
        delete from public.issuer_stats_cache as c
        where not exists (select from computed where computed.ticker = c.ticker)
        returning c.ticker
    )

    select count(*)::integer into v_refreshed
    from upserted;

    return v_refreshed;
end;
$$;

comment on function public.refresh_issuer_stats_cache(timestamptz) is
'Rebuilds issuer_stats_cache for every listed issuer as of p_now in one statement (rows of '
'delisted issuers go) and returns the number of issuers cached. current_price, '
'circulating_supply and market_cap (= the pool, total_usdp) are the current curve state; '
'holders = users holding more than 0 PV; volume_24h = USDP of completed trades in '
'(p_now - 24 h, p_now]; price_1h/24h/7d_change = percent, 2 decimals, against the last tick '
'at or before p_now minus the period, else against the listing price base_price. Takes no '
'row locks on market tables. Job refresh-issuer-stats-cache, every 5 minutes. p_now: a '
'finite time from 31 days before to 1 hour after now(), else 22023.';

create or replace function public.snapshot_hourly_prices(
    p_max_backfill interval default interval '7 days',
    p_now timestamptz default now()
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_last_closed timestamptz := date_trunc('hour', p_now, 'UTC') - interval '1 hour';
    v_floor timestamptz;
    v_written integer;
begin
    perform pauv.checked_now(p_now, interval '31 days', interval '1 hour');
    if p_max_backfill is null or p_max_backfill < interval '1 hour'
        or p_max_backfill > interval '366 days' then
        raise exception 'p_max_backfill must be from 1 hour to 366 days, got %', p_max_backfill
            using errcode = 'invalid_parameter_value';
    end if;
    v_floor := date_trunc('hour', p_now - p_max_backfill, 'UTC');

    -- Two snapshots at once would write the same rows: serialise them.
    -- The two-key form: its key space never meets single-key locks taken elsewhere.
    perform pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtext('pauv.jobs'), pg_catalog.hashtext('snapshot_hourly_prices')
    );

    with traded as (
        select
            t.ticker,
            greatest(date_trunc('hour', f.first_tick, 'UTC'), v_floor) as window_start
        from public.issuer_trading as t
        cross join lateral (
            select min(ph.timestamp) as first_tick
            from public.price_history as ph
            where ph.ticker = t.ticker
        ) as f
        where f.first_tick < v_last_closed + interval '1 hour'
    ),

    -- The earliest hour of the window without a candle, if any.
    first_missing as (
        select
            tr.ticker,
            tr.window_start,
            (
                select min(h.hour)
                from pg_catalog.generate_series(
                    tr.window_start, v_last_closed, interval '1 hour'
                ) as h (hour)
                where not exists (
                    select
                    from public.price_candles_hourly as c
                    where c.ticker = tr.ticker and c.bucket_start = h.hour
                )
            ) as missing_from
        from traded as tr
    ),

    todo as (
        select
            fm.ticker,
            greatest(
                fm.window_start,
                least(fm.missing_from, v_last_closed - interval '1 hour')
            ) as from_hour
        from first_missing as fm
    ),

    computed as (
        select
            td.ticker,
            c.bucket,
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume_usdp,
            c.volume_pv,
            c.trade_count,
            c.supply_close
        from todo as td
        cross join lateral pauv.compute_candles(
            td.ticker, interval '1 hour', td.from_hour, v_last_closed + interval '1 hour'
        ) as c
    ),

    written as (
        insert into public.price_candles_hourly as p (
            ticker, bucket_start, open, high, low, close, volume_usdp, volume_pv,
            trade_count, supply_close
        )
        select
            computed.ticker,
            computed.bucket,
            computed.open,
            computed.high,
            computed.low,
            computed.close,
            computed.volume_usdp,
            computed.volume_pv,
            computed.trade_count,
            computed.supply_close
        from computed
        order by computed.ticker, computed.bucket
        on conflict (ticker, bucket_start) do update
            set
                open = excluded.open,
                high = excluded.high,
                low = excluded.low,
                close = excluded.close,
                volume_usdp = excluded.volume_usdp,
                volume_pv = excluded.volume_pv,
                trade_count = excluded.trade_count,
                supply_close = excluded.supply_close
            -- An unchanged candle is not rewritten: a second run changes nothing.
            where (p.open, p.high, p.low, p.close, p.volume_usdp, p.volume_pv, p.trade_count,
                p.supply_close)
            is distinct from (excluded.open, excluded.high, excluded.low, excluded.close,
                excluded.volume_usdp, excluded.volume_pv, excluded.trade_count,
                excluded.supply_close)
        returning 1
    )

    select count(*)::integer into v_written
    from written;

    return v_written;
end;
$$;

comment on function public.snapshot_hourly_prices(interval, timestamptz) is
'Job hourly-price-snapshot (at minute 0 of every hour): for every traded issuer, writes the '
'candles of public.price_candles_hourly for each closed UTC hour before p_now, from the '
'earliest hour missing within the last p_max_backfill (7 days) or else the last two closed '
'hours, which it recomputes. Hours without trades carry the previous close; no candle before '
'an issuer''s first trade. Returns the number of candles inserted or changed (0 on a rerun). '
'p_now: a finite time from 31 days before to 1 hour after now(), else 22023.';

create or replace function public.cleanup_old_queue_entries(
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
    perform pauv.checked_now(p_now, interval '31 days', interval '1 hour');
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
'has_more}; call again while has_more, or use pauv.run_cleanup_old_queue_entries(). p_now: a '
'finite time from 31 days before to 1 hour after now(), else 22023.';

create or replace function pauv.purge_cron_job_run_details(
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
    perform pauv.checked_now(p_now, interval '31 days', interval '1 hour');
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
'(or, never finished, started) before p_now - p_retention (7 days); returns the rows deleted. '
'p_now: a finite time from 31 days before to 1 hour after now(), else 22023.';

create or replace function public.get_ohlc_data(
    p_ticker text,
    p_interval text,
    p_start_time timestamptz,
    p_end_time timestamptz,
    p_now timestamptz default now()
)
returns table (
    bucket timestamptz,
    open numeric,
    high numeric,
    low numeric,
    close numeric,
    volume numeric,
    avg_price numeric
)
language plpgsql
stable
set search_path = ''
as $$
declare
    v_origin constant timestamptz := timestamptz '1970-01-01 00:00:00+00';
    v_stride interval;
    v_seconds numeric;
    v_from timestamptz;
    v_to timestamptz;
    v_first_tick_hour timestamptz;
    v_first_unstored timestamptz;
begin
    perform pauv.checked_now(p_now, interval '31 days', interval '1 hour');
    begin
        v_stride := p_interval::interval;
    exception when others then
        raise exception 'p_interval must be an interval such as ''1 minute'', ''15 minutes'', '
            '''1 hour'' or ''1 day'', got %', coalesce(quote_literal(p_interval), 'null')
            using errcode = 'invalid_parameter_value';
    end;
    v_seconds := extract(epoch from v_stride);
    if v_stride is null or v_seconds < 60 or v_seconds > 86400 or v_seconds % 60 <> 0
        or extract(month from v_stride) <> 0 or extract(year from v_stride) <> 0 then
        raise exception 'p_interval must be a whole number of minutes from 1 minute to 1 day, '
            'got %', coalesce(quote_literal(p_interval), 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    v_stride := make_interval(secs => v_seconds);
    if p_start_time is null or p_end_time is null or p_start_time >= p_end_time then
        raise exception 'p_start_time must be before p_end_time, got % and %',
            p_start_time, p_end_time
            using errcode = 'invalid_parameter_value';
    end if;
    if not exists (select from public.issuer_trading as t where t.ticker = p_ticker) then
        raise exception 'unknown ticker %', coalesce(quote_literal(p_ticker), 'null')
            using errcode = 'no_data_found';
    end if;

    -- Buckets are aligned to the interval from the Unix epoch (so days start at 00:00 UTC);
    -- the first is the one holding p_start_time, the last starts before p_end_time and at or
    -- before p_now, and it only holds data up to p_now.
    v_from := pg_catalog.date_bin(v_stride, p_start_time, v_origin);
    v_to := least(p_end_time, p_now + interval '1 microsecond');
    if v_to <= v_from then
        return;
    end if;
    if extract(epoch from v_to - v_from) / v_seconds > 10000 then
        raise exception 'at most 10000 candles per call: ask for a shorter period or a longer '
            'interval (% from % to %)', p_interval, p_start_time, p_end_time
            using errcode = 'program_limit_exceeded';
    end if;

    if v_seconds % 3600 <> 0 then
        return query
        select
            c.bucket,
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume_usdp,
            case when c.volume_pv > 0 then round(c.volume_usdp / c.volume_pv, 8) end
        from pauv.compute_candles(p_ticker, v_stride, v_from, v_to) as c
        order by c.bucket;
        return;
    end if;

    -- Whole hours: stored candles up to the first hour of the range that is not stored
    -- (normally the current hour), ticks from there on. No hour before the first trade.
    select date_trunc('hour', min(ph.timestamp), 'UTC') into v_first_tick_hour
    from public.price_history as ph
    where ph.ticker = p_ticker;
    if v_first_tick_hour is null then
        return;
    end if;
    select min(h.hour) into v_first_unstored
    from pg_catalog.generate_series(
        greatest(v_from, v_first_tick_hour), v_to - interval '1 microsecond', interval '1 hour'
    ) as h (hour)
    where not exists (
        select
        from public.price_candles_hourly as s
        where
            s.ticker = p_ticker
            and s.bucket_start = h.hour
            and s.bucket_start + interval '1 hour' <= v_to
    );

    return query
    with hours as (
        select
            s.bucket_start as hour,
            s.open,
            s.high,
            s.low,
            s.close,
            s.volume_usdp,
            s.volume_pv
        from public.price_candles_hourly as s
        where
            s.ticker = p_ticker
            and s.bucket_start >= v_from
            and s.bucket_start < coalesce(v_first_unstored, v_to)
        union all
        select
            c.bucket,
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume_usdp,
            c.volume_pv
        from pauv.compute_candles(
            p_ticker, interval '1 hour', coalesce(v_first_unstored, v_from),
            case when v_first_unstored is null then v_from else v_to end
        ) as c
    )

    select
        pg_catalog.date_bin(v_stride, h.hour, v_origin) as candle,
        (array_agg(h.open order by h.hour))[1],
        max(h.high),
        min(h.low),
        (array_agg(h.close order by h.hour desc))[1],
        sum(h.volume_usdp),
        case when sum(h.volume_pv) > 0 then round(sum(h.volume_usdp) / sum(h.volume_pv), 8) end
    from hours as h
    group by 1
    order by 1;
end;
$$;

comment on function public.get_ohlc_data(text, text, timestamptz, timestamptz, timestamptz) is
'Candles for a chart: p_interval from ''1 minute'' to ''1 day'' (whole minutes), buckets '
'aligned from the Unix epoch in UTC, from the bucket holding p_start_time to the last one '
'starting before p_end_time and not after p_now, in time order, none before the first trade. '
'open = price at the bucket start, close = last price, volume = USDP traded, avg_price = '
'volume / PV traded (null without trades). Buckets without trades carry the previous close. '
'At most 10000 candles per call. p_now: a finite time from 31 days before to 1 hour after '
'now(), else 22023.';
