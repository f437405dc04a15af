-- The Pauv app's market reads, kept by name, arguments and result columns on fresh and
-- adopted projects alike, now served by this package's ticks, candles and stats cache.
-- On an adopted project they replace the app's own versions (same signatures).
create or replace function public.get_latest_price(p_ticker text)
returns table (out_ticker text, out_price numeric, out_supply numeric, out_timestamp timestamptz)
language sql
stable
set search_path = ''
as $$
    select h.ticker, h.price, h.supply, h.timestamp
    from public.price_history as h
    where h.ticker = p_ticker
    order by h.timestamp desc, h.id desc
    limit 1
$$;

comment on function public.get_latest_price(text) is
'The app''s latest price: the newest tick of the ticker (price and supply after its last trade).';

-- As the stats cache computes it: the current curve price against the last tick at or before
-- now() - p_period, or against the listing price (base_price) when there is none.
create or replace function public.get_price_change(
    p_ticker text, p_period interval default '24 hours'
)
returns table (
    current_price numeric, previous_price numeric, price_change numeric,
    price_change_percent numeric
)
language sql
stable
set search_path = ''
as $$
    select
        t.current_price,
        r.price,
        t.current_price - r.price,
        pg_catalog.round((t.current_price - r.price) * 100 / r.price, 2)
    from public.issuer_trading as t
    cross join lateral (
        select coalesce((
            select h.price from public.price_history as h
            where h.ticker = t.ticker and h.timestamp <= pg_catalog.now() - p_period
            order by h.timestamp desc, h.id desc
            limit 1
        ), t.base_price) as price
    ) as r
    where t.ticker = p_ticker
$$;

comment on function public.get_price_change(text, interval) is
'The app''s price change over p_period: current price, the price then (last tick at or before '
'now() - p_period, else the listing price), the difference and the percentage (2 decimals).';

create or replace function public.get_all_issuer_stats()
returns table (
    out_ticker text, out_current_price numeric, out_price_1h_change numeric,
    out_price_24h_change numeric, out_price_7d_change numeric, out_volume_24h numeric,
    out_holders integer, out_market_cap numeric, out_circulating_supply numeric,
    out_cached_at timestamptz
)
language sql
stable
set search_path = ''
as $$
    select
        c.ticker, c.current_price, c.price_1h_change, c.price_24h_change, c.price_7d_change,
        c.volume_24h, c.holders, c.market_cap, c.circulating_supply, c.cached_at
    from public.issuer_stats_cache as c
    order by c.market_cap desc, c.ticker
$$;

comment on function public.get_all_issuer_stats() is
'The app''s market overview: every row of issuer_stats_cache, largest market cap first.';

create or replace function public.get_issuer_stats(p_ticker text)
returns table (
    out_ticker text, out_current_price numeric, out_price_1h_change numeric,
    out_price_24h_change numeric, out_price_7d_change numeric, out_volume_24h numeric,
    out_holders integer, out_market_cap numeric, out_circulating_supply numeric,
    out_cached_at timestamptz
)
language sql
stable
set search_path = ''
as $$
    select
        c.ticker, c.current_price, c.price_1h_change, c.price_24h_change, c.price_7d_change,
        c.volume_24h, c.holders, c.market_cap, c.circulating_supply, c.cached_at
    from public.issuer_stats_cache as c
    where c.ticker = pg_catalog.upper(p_ticker)
$$;

comment on function public.get_issuer_stats(text) is
'The app''s stats of one issuer (ticker case-insensitive): its issuer_stats_cache row.';

-- Few ticks: each tick as a point; many: get_ohlc_data candles of a whole number of minutes
-- (gap-filled, USDP volume). Either way a first point carries the price in force at
-- p_start_time (the last tick before it, else the listing price).
create or replace function public.get_chart_data_adaptive(
    p_ticker text, p_start_time timestamptz, p_end_time timestamptz,
    p_max_points integer default 200
)
returns table (
    bucket timestamptz, open numeric, high numeric, low numeric, close numeric,
    volume numeric, avg_price numeric
)
language plpgsql
stable
set search_path = ''
as $$
declare
    v_carry numeric;
    v_ticks bigint;
    v_minutes numeric;
begin
    if p_max_points is null or p_max_points < 1 or p_max_points > 10000 then
        raise exception 'p_max_points must be between 1 and 10000, got %', p_max_points
            using errcode = 'invalid_parameter_value';
    end if;
    if p_start_time is null or p_end_time is null or p_start_time >= p_end_time then
        raise exception 'p_start_time must be before p_end_time, got % and %',
            p_start_time, p_end_time
            using errcode = 'invalid_parameter_value';
    end if;

    select coalesce((
        select h.price from public.price_history as h
        where h.ticker = t.ticker and h.timestamp < p_start_time
        order by h.timestamp desc, h.id desc
        limit 1
    ), t.base_price)
    into v_carry
    from public.issuer_trading as t
    where t.ticker = p_ticker;
    if v_carry is null then
        return;
    end if;
    return query select p_start_time, v_carry, v_carry, v_carry, v_carry, 0::numeric, v_carry;

    select count(*) into v_ticks
    from public.price_history as h
    where h.ticker = p_ticker and h.timestamp >= p_start_time and h.timestamp <= p_end_time;

    if v_ticks <= p_max_points then
        return query
        select h.timestamp, h.price, h.price, h.price, h.price, 0::numeric, h.price
        from public.price_history as h
        where h.ticker = p_ticker and h.timestamp >= p_start_time and h.timestamp <= p_end_time
        order by h.timestamp, h.id;
    else
        v_minutes := least(greatest(pg_catalog.ceil(
            extract(epoch from p_end_time - p_start_time) / 60 / p_max_points
        ), 1), 1440);
        return query
        select o.bucket, o.open, o.high, o.low, o.close, o.volume, o.avg_price
        from public.get_ohlc_data(p_ticker, v_minutes || ' minutes', p_start_time, p_end_time) as o;
    end if;
end;
$$;

comment on function public.get_chart_data_adaptive(text, timestamptz, timestamptz, integer) is
'The app''s chart: a carry-forward point at p_start_time, then every tick when there are at '
'most p_max_points, else about p_max_points candles from get_ohlc_data.';

revoke all on function public.get_latest_price(text) from public;
revoke all on function public.get_price_change(text, interval) from public;
revoke all on function public.get_all_issuer_stats() from public;
revoke all on function public.get_issuer_stats(text) from public;
revoke all on function public.get_chart_data_adaptive(text, timestamptz, timestamptz, integer)
from public;
grant execute on function public.get_latest_price(text) to anon, authenticated, service_role;
grant execute on function public.get_price_change(text, interval)
to anon, authenticated, service_role;
grant execute on function public.get_all_issuer_stats() to anon, authenticated, service_role;
grant execute on function public.get_issuer_stats(text) to anon, authenticated, service_role;
grant execute on function public.get_chart_data_adaptive(text, timestamptz, timestamptz, integer)
to anon, authenticated, service_role;
