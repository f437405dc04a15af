-- The invariant audit also reports holdings that name a missing user or issuer: their
-- foreign keys are now statement checks and delete guards too (previous migration), which a
-- TRUNCATE or disabled triggers get past. Whole body restated from 20261129112950; the
-- other checks are unchanged.
create or replace function public.audit_market_invariants()
returns table (invariant text, ticker text, details text)
language sql
stable
set search_path = ''
as $$
    -- 1. Solvency: the pool covers buying back all supply, and the surplus is dust (per
    -- trade at most 1e-6, or the price of 1e-8 PV plus its curve term when larger).
    select 'solvency', t.ticker, format(
        'pool %s, curve value %s, surplus %s, allowed dust %s',
        t.total_usdp, v.curve_value, t.total_usdp - v.curve_value,
        coalesce(d.dust, 0) + coalesce(a.surplus, 0)
    )
    from public.issuer_trading as t
    cross join lateral (
        select t.base_price * t.current_supply
            + 0.5 * t.price_step * t.current_supply * t.current_supply as curve_value
    ) as v
    left join lateral (
        select sum(greatest(0.000001, x.end_price * 0.00000001 + t.price_step * 0.00000001 * 0.00000001))
            as dust
        from public.transactions as x
        where x.ticker = t.ticker and x.legacy_id is null
    ) as d on true
    -- An adopted pool keeps what it held beyond the curve value at adoption.
    left join pauv.adopted_pools as a on t.ticker = a.ticker
    where t.total_usdp < v.curve_value
        or t.total_usdp - v.curve_value > coalesce(d.dust, 0) + coalesce(a.surplus, 0)

    union all
    -- 2. Supply equals the tokens held.
    select 'supply', t.ticker, format('current_supply %s, held in portfolios %s', t.current_supply, h.held)
    from public.issuer_trading as t
    cross join lateral (
        select coalesce(sum(p.pv_amount), 0) as held from public.portfolio as p where p.ticker = t.ticker
    ) as h
    where t.current_supply <> h.held

    union all
    -- 3. Conservation: balances plus pools equal net deposits.
    select 'conservation', null, format(
        'balances %s + pools %s = %s, net deposits %s', b.balances, pl.pools, b.balances + pl.pools, m.net
    )
    from (select coalesce(sum(u.usdp_balance), 0) as balances from public.users as u) as b
    cross join (select coalesce(sum(t.total_usdp), 0) as pools from public.issuer_trading as t) as pl
    cross join (select coalesce(sum(m.amount), 0) as net from pauv.usdp_movements as m) as m
    where b.balances + pl.pools <> m.net

    union all
    -- 4. Nothing negative (the column domains forbid it; checked all the same).
    select 'non_negative', null, format('%s negative balances, holdings, supplies or pools', n.bad)
    from (
        select
            (select count(*) from public.users as u where u.usdp_balance < 0)
            + (select count(*) from public.portfolio as p where p.pv_amount < 0)
            + (select count(*) from public.issuer_trading as t
                where t.current_supply < 0 or t.total_usdp < 0) as bad
    ) as n
    where n.bad > 0

    union all
    -- 5. Exactly once: completed orders have exactly one trade, others none, and no
    -- order is left 'processing'.
    select 'exactly_once', q.ticker, format(
        'order %s is %s with %s transactions', q.id, q.status, count(x.id)
    )
    from public.queue as q
    left join public.transactions as x on x.queue_id = q.id
    group by q.id, q.ticker, q.status
    having
        q.status = 'processing'
        or (q.status = 'completed' and count(x.id) <> 1)
        or (q.status <> 'completed' and count(x.id) <> 0)

    union all
    -- 6. FIFO per ticker: trades of a ticker executed in (date, id) order of their orders.
    select 'fifo', f.ticker, format('order %s executed after the later order %s', f.queue_id, f.prev_queue_id)
    from (
        select
            x.ticker,
            x.queue_id,
            q.date,
            lag(q.id) over w as prev_queue_id,
            lag(q.date) over w as prev_date
        from public.transactions as x
        inner join public.queue as q on q.id = x.queue_id
        -- Adopted trades ran under the legacy processor, which had no FIFO rule.
        where x.legacy_id is null
        window w as (partition by x.ticker order by x.id)
    ) as f
    where (f.prev_date, f.prev_queue_id) > (f.date, f.queue_id)

    union all
    -- 7. References: every trade and holding names an existing user and issuer, every price
    -- tick an existing issuer and, when it names one, trade (checked per statement and
    -- guarded against deletes since the foreign keys went; this finds what those cannot see).
    select 'references', x.ticker, format('trade %s names user %s, which does not exist', x.id, x.user_id)
    from public.transactions as x
    where not exists (select from public.users as u where u.user_id = x.user_id)

    union all
    select 'references', x.ticker, format('trade %s names issuer %s, which does not exist', x.id, x.ticker)
    from public.transactions as x
    where not exists (select from public.issuer_trading as t where t.ticker = x.ticker)

    union all
    select 'references', h.ticker, format('price tick %s names issuer %s, which does not exist', h.id, h.ticker)
    from public.price_history as h
    where not exists (select from public.issuer_trading as t where t.ticker = h.ticker)

    union all
    select 'references', h.ticker, format(
        'price tick %s names trade %s, which does not exist', h.id, h.transaction_id
    )
    from public.price_history as h
    where h.transaction_id is not null
        and not exists (select from public.transactions as x where x.id = h.transaction_id)

    union all
    select 'references', p.ticker, format(
        'holding of user %s in %s names a user that does not exist', p.user_id, p.ticker
    )
    from public.portfolio as p
    where not exists (select from public.users as u where u.user_id = p.user_id)

    union all
    select 'references', p.ticker, format(
        'holding of user %s in %s names an issuer that does not exist', p.user_id, p.ticker
    )
    from public.portfolio as p
    where not exists (select from public.issuer_trading as t where t.ticker = p.ticker)
$$;

comment on function public.audit_market_invariants() is
'Operators: one row per violated invariant of the market (solvency, supply, conservation, '
'non_negative, exactly_once, fifo, references) with the numbers; no rows when healthy.';
