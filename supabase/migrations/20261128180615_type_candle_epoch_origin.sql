-- The candle functions' epoch origin as a typed timestamptz literal instead of text cast on
-- assignment (plpgsql_check warned 42804 on both); behaviour unchanged. Same bodies, grants
-- and comments otherwise (create or replace keeps them).
create or replace function pauv.compute_candles(
    p_ticker text,
    p_stride interval,
    p_from timestamptz,
    p_to timestamptz
)
returns table (
    bucket timestamptz,
    open numeric,
    high numeric,
    low numeric,
    close numeric,
    volume_usdp numeric,
    volume_pv numeric,
    trade_count integer,
    supply_close numeric
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_origin constant timestamptz := timestamptz '1970-01-01 00:00:00+00';
    v_seconds numeric := extract(epoch from p_stride);
    v_base_price numeric;
    v_first_tick timestamptz;
    v_from timestamptz;
    v_carry_price numeric;
    v_carry_supply numeric;
begin
    if p_ticker is null or p_from is null or p_to is null or p_stride is null then
        raise exception 'ticker, stride, from and to are required'
            using errcode = 'invalid_parameter_value';
    end if;
    if v_seconds < 60 or v_seconds > 86400 or v_seconds % 60 <> 0
        or extract(month from p_stride) <> 0 or extract(year from p_stride) <> 0 then
        raise exception 'stride must be a whole number of minutes from 1 minute to 1 day, got %',
            p_stride
            using errcode = 'invalid_parameter_value';
    end if;
    if p_from <> pg_catalog.date_bin(p_stride, p_from, v_origin) then
        raise exception 'from (%) must be aligned to the stride %', p_from, p_stride
            using errcode = 'invalid_parameter_value';
    end if;
    if extract(epoch from p_to - p_from) / v_seconds > 10000 then
        raise exception 'at most 10000 buckets per call, asked for % to % by %',
            p_from, p_to, p_stride
            using errcode = 'program_limit_exceeded';
    end if;

    select t.base_price into v_base_price
    from public.issuer_trading as t
    where t.ticker = p_ticker;
    if not found then
        raise exception 'unknown ticker %', p_ticker using errcode = 'no_data_found';
    end if;

    select min(ph.timestamp) into v_first_tick
    from public.price_history as ph
    where ph.ticker = p_ticker;
    if v_first_tick is null then
        return;  -- never traded: no candle before the first trade
    end if;

    v_from := greatest(p_from, pg_catalog.date_bin(p_stride, v_first_tick, v_origin));
    -- Normalised so 1 day steps 24 hours whatever the session's time zone.
    p_stride := make_interval(secs => v_seconds);

    select ph.price, ph.supply into v_carry_price, v_carry_supply
    from public.price_history as ph
    where ph.ticker = p_ticker and ph.timestamp < v_from
    order by ph.timestamp desc, ph.id desc
    limit 1;
    v_carry_price := coalesce(v_carry_price, v_base_price);
    v_carry_supply := coalesce(v_carry_supply, 0);

    return query
    with buckets as (
        select b.bucket
        from pg_catalog.generate_series(v_from, p_to - interval '1 microsecond', p_stride)
            as b (bucket)
    ),

    ticks as (
        select
            pg_catalog.date_bin(p_stride, ph.timestamp, v_origin) as bucket,
            max(ph.price) as high,
            min(ph.price) as low,
            (array_agg(ph.price order by ph.timestamp desc, ph.id desc))[1] as close,
            (array_agg(ph.supply order by ph.timestamp desc, ph.id desc))[1] as supply
        from public.price_history as ph
        where ph.ticker = p_ticker and ph.timestamp >= v_from and ph.timestamp < p_to
        group by 1
    ),

    trades as (
        select
            pg_catalog.date_bin(p_stride, tx.date, v_origin) as bucket,
            sum(tx.amount_usdp) as volume_usdp,
            sum(tx.pv_traded) as volume_pv,
            count(*)::integer as trade_count
        from public.transactions as tx
        where tx.ticker = p_ticker and tx.date >= v_from and tx.date < p_to
        group by 1
    ),

    -- grp counts the buckets with ticks so far: a bucket without ticks shares its grp with
    -- the last bucket that had one, whose close and supply it carries.
    joined as (
        select
            b.bucket,
            t.high,
            t.low,
            t.close,
            t.supply,
            coalesce(tr.volume_usdp, 0) as volume_usdp,
            coalesce(tr.volume_pv, 0) as volume_pv,
            coalesce(tr.trade_count, 0) as trade_count,
            count(t.close) over (order by b.bucket) as grp
        from buckets as b
        left join ticks as t on b.bucket = t.bucket
        left join trades as tr on b.bucket = tr.bucket
    ),

    carried as (
        select
            j.*,
            coalesce(
                first_value(j.close) over (partition by j.grp order by j.bucket), v_carry_price
            ) as close_carried,
            coalesce(
                first_value(j.supply) over (partition by j.grp order by j.bucket), v_carry_supply
            ) as supply_carried
        from joined as j
    ),

    opened as (
        select
            c.*,
            coalesce(lag(c.close_carried) over (order by c.bucket), v_carry_price) as open_price
        from carried as c
    )

    select
        o.bucket,
        o.open_price,
        greatest(o.open_price, o.high),
        least(o.open_price, o.low),
        o.close_carried,
        o.volume_usdp,
        o.volume_pv,
        o.trade_count,
        o.supply_carried
    from opened as o
    order by o.bucket;
end;
$$;

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
