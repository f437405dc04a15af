-- OHLC candles computed from price ticks and trades, and the hourly candle table the job
-- hourly-price-snapshot fills. Price is a state of the curve, so a candle opens at the
-- price its bucket started with (the previous close) and a bucket without trades is flat.
create table public.price_candles_hourly (
    -- No foreign key on purpose (a KEY SHARE lock on issuer_trading would make trades wait);
    -- an issuer with ticks cannot be deleted anyway (price_history references it).
    ticker text not null,
    bucket_start timestamptz not null
    constraint price_candles_hourly_bucket_on_the_hour
    check (bucket_start = date_trunc('hour', bucket_start, 'UTC')),
    open numeric not null,
    high numeric not null,
    low numeric not null,
    close numeric not null, -- noqa: RF04
    volume_usdp numeric not null,
    volume_pv numeric not null,
    trade_count integer not null,
    supply_close numeric not null,
    created_at timestamptz not null default now(),
    primary key (ticker, bucket_start),
    constraint price_candles_hourly_ohlc_consistent check (
        low <= open and low <= close and high >= open and high >= close and low > 0
    )
);

comment on table public.price_candles_hourly is
'One candle per issuer and closed UTC hour [bucket_start, bucket_start + 1 h), from the hour '
'of its first trade on; written by snapshot_hourly_prices() (job hourly-price-snapshot).';
comment on column public.price_candles_hourly.open is
'Price when the hour began: the last tick before it, or base_price before the first trade.';
comment on column public.price_candles_hourly.high is 'Highest of open and the hour''s ticks.';
comment on column public.price_candles_hourly.low is 'Lowest of open and the hour''s ticks.';
comment on column public.price_candles_hourly.close is
'Price of the hour''s last tick; the open when the hour had no trade.';
comment on column public.price_candles_hourly.volume_usdp is
'USDP of the hour''s trades (transactions.amount_usdp).';
comment on column public.price_candles_hourly.volume_pv is
'PV tokens of the hour''s trades (transactions.pv_traded); volume_usdp / volume_pv is the '
'average traded price.';
comment on column public.price_candles_hourly.trade_count is 'Trades executed in the hour.';
comment on column public.price_candles_hourly.supply_close is
'current_supply after the hour''s last trade (carried over when the hour had none).';

alter table public.price_candles_hourly enable row level security;

create policy price_candles_hourly_readable_by_everyone on public.price_candles_hourly
for select to anon, authenticated using (true);

grant select on public.price_candles_hourly to anon, authenticated;
grant select, insert, update, delete on public.price_candles_hourly to service_role;

-- SECURITY DEFINER because volumes come from public.transactions, which the API roles may
-- only read row by row for their own trades; it returns per-bucket aggregates only.
create function pauv.compute_candles(
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
    v_origin constant timestamptz := '1970-01-01 00:00:00+00';
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

comment on function pauv.compute_candles(text, interval, timestamptz, timestamptz) is
'Candles of p_stride (1 minute to 1 day) for buckets starting in [p_from, p_to), p_from '
'aligned to the stride from the Unix epoch (UTC), data in [p_from, p_to), from the bucket of '
'the first trade on. open = price at the bucket''s start (last earlier tick, else '
'base_price), high/low over open and the ticks, close = last tick (or open), volumes and '
'trade count from transactions, supply after the last tick. At most 10000 buckets.';

grant usage on schema pauv to anon, authenticated;
grant execute on function pauv.compute_candles(text, interval, timestamptz, timestamptz)
to anon, authenticated, service_role;
