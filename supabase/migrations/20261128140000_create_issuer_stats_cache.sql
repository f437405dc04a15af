-- Market statistics per listed issuer, read by the app instead of aggregating trades on
-- every page view. refresh_issuer_stats_cache() rebuilds every row in one statement; the
-- job refresh-issuer-stats-cache runs it every 5 minutes.
create table public.issuer_stats_cache (
    -- No foreign key on purpose: its check would take a KEY SHARE lock on the issuer_trading
    -- row, and a refresh must never make a trade wait. Delisted issuers' rows are removed by
    -- the next refresh.
    ticker text primary key,
    current_price numeric not null,
    price_1h_change numeric not null,
    price_24h_change numeric not null,
    price_7d_change numeric not null,
    volume_24h numeric not null,
    holders integer not null,
    market_cap numeric not null,
    circulating_supply numeric not null,
    cached_at timestamptz not null
);

comment on table public.issuer_stats_cache is
'Market statistics per listed issuer, rebuilt by refresh_issuer_stats_cache() every 5 '
'minutes (job refresh-issuer-stats-cache). Read-only for the app.';
comment on column public.issuer_stats_cache.current_price is
'issuer_trading.current_price when the cache was refreshed (base_price + price_step * supply).';
comment on column public.issuer_stats_cache.price_1h_change is
'Percent change, 2 decimals, of current_price against the last price_history price at or '
'before cached_at - 1 hour; when there is none (issuer younger or untraded then), against '
'its first price, the listing price base_price.';
comment on column public.issuer_stats_cache.price_24h_change is
'As price_1h_change, against the price at or before cached_at - 24 hours.';
comment on column public.issuer_stats_cache.price_7d_change is
'As price_1h_change, against the price at or before cached_at - 7 days.';
comment on column public.issuer_stats_cache.volume_24h is
'USDP of completed trades (transactions.amount_usdp) with date in (cached_at - 24 h, '
'cached_at]: a trade exactly 24 hours old no longer counts.';
comment on column public.issuer_stats_cache.holders is
'Number of users whose portfolio holds more than 0 PV of the issuer.';
comment on column public.issuer_stats_cache.market_cap is
'The pool, issuer_trading.total_usdp: USDP paid in by buyers minus USDP paid to sellers.';
comment on column public.issuer_stats_cache.circulating_supply is
'PV tokens in circulation, issuer_trading.current_supply.';
comment on column public.issuer_stats_cache.cached_at is
'The refresh time the row was computed for (the p_now of the refresh).';

alter table public.issuer_stats_cache enable row level security;

create policy issuer_stats_cache_readable_by_everyone on public.issuer_stats_cache
for select to anon, authenticated using (true);

grant select on public.issuer_stats_cache to anon, authenticated;
grant select, insert, update, delete on public.issuer_stats_cache to service_role;

-- Percent change rounded to 2 decimals; the reference is a price, always > 0.
create function pauv.percent_change(p_current numeric, p_reference numeric)
returns numeric
language sql
immutable
set search_path = ''
as $$
    select round((p_current - p_reference) * 100 / p_reference, 2)
$$;

comment on function pauv.percent_change(numeric, numeric) is
'(p_current - p_reference) / p_reference as a percentage rounded to 2 decimals.';

grant execute on function pauv.percent_change(numeric, numeric) to service_role;

create function public.refresh_issuer_stats_cache(p_now timestamptz default now())
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_refreshed integer;
begin
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
'row locks on market tables. Job refresh-issuer-stats-cache, every 5 minutes.';

grant execute on function public.refresh_issuer_stats_cache(timestamptz) to service_role;
