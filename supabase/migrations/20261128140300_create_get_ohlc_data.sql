-- Chart data for the app: candles of any interval from 1 minute to 1 day, gap-filled and in
-- time order. Whole-hour intervals are built from the stored hourly candles (plus ticks for
-- the hours not stored yet); finer intervals straight from the ticks.
create function public.get_ohlc_data(
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
    v_origin constant timestamptz := '1970-01-01 00:00:00+00';
    v_stride interval;
    v_seconds numeric;
    v_from timestamptz;
    v_to timestamptz;
    v_first_tick_hour timestamptz;
    v_first_unstored timestamptz;
begin
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
'At most 10000 candles per call.';

grant execute on function public.get_ohlc_data(text, text, timestamptz, timestamptz, timestamptz)
to anon, authenticated, service_role;
