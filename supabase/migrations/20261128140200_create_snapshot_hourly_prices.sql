-- The job hourly-price-snapshot: writes each issuer's candles for the closed UTC hours not
-- yet written (bounded catch-up after missed runs) and rewrites the last two closed hours,
-- so a trade committed just after the hour turned still lands in its candle.
create function public.snapshot_hourly_prices(
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
'an issuer''s first trade. Returns the number of candles inserted or changed (0 on a rerun).';

grant execute on function public.snapshot_hourly_prices(interval, timestamptz) to service_role;
