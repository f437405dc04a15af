"""A large legacy market for the benchmark, made set-based in SQL: the shapes of
build_legacy_market (long decimals, supply and pool drift, NULL queue_ids, pending orders
some of which are no longer covered) at 100k users / 1M trades / 1M ticks in seconds,
not hours. Triggers and foreign keys are off while it writes (session_replication_role),
so it keeps every reference valid itself and writes what the legacy triggers would have
(users, waitlist, issuer_links rows)."""

from __future__ import annotations

import time

import psycopg

# A value with `scale` decimals, none of them trailing zeros, from an integer expression:
# numeric division keeps the dividend's scale, so (k / 89) at scale 600 has 600 decimals.
def _tail(expr: str, scale: int) -> str:
    return f"(((({expr}) %% 89) + 1)::numeric(1000, {scale}) / 89)"


def _cents(expr: str) -> str:
    return f"round(({expr})::numeric / 100, 2)"


STEPS: list[tuple[str, str]] = [
    ("numbered users", """
        create temporary table bulk_users on commit drop as
        select n, gen_random_uuid() as user_id from generate_series(1, %(users)s) as n;
        alter table bulk_users add primary key (n)"""),
    ("numbered issuers", """
        create temporary table bulk_issuers on commit drop as
        select n, 'BK' || lpad(n::text, 6, '0') as ticker,
               n %% 20 <> 0 as listed,              -- 5 %% of profiles are not listed
               case when n %% 7 = 0 then 2.5 else 1.00 end as base_price,
               case when n %% 5 = 0 then 0.02 else 0.01 end as price_step
        from generate_series(1, %(issuers)s) as n;
        alter table bulk_issuers add primary key (n);
        create temporary table bulk_listed on commit drop as
        select row_number() over (order by n) as k, ticker, base_price, price_step
        from bulk_issuers where listed;
        alter table bulk_listed add primary key (k)"""),
    ("auth.users, users, waitlist (as the sign-up triggers would)", f"""
        insert into auth.users (id, aud, role, email, raw_user_meta_data, created_at)
        select user_id, 'authenticated', 'authenticated', 'bulk' || n || '@example.test',
               '{{}}'::jsonb, now() - interval '90 days' + n * interval '1 second'
        from bulk_users;
        insert into public.users (user_id, username, usdp_balance, created_at)
        select user_id, 'bulk' || n,
               -- a tenth with ~600 decimals, most with 16, a few whole cents
               case when n %% 10 = 0 then (n %% 5000)::numeric + {_tail('n', 600)}
                    when n %% 10 < 8 then (n %% 5000)::numeric + {_tail('n * 7', 16)}
                    else {_cents('n %% 500000')} end,
               now() - interval '90 days' + n * interval '1 second'
        from bulk_users;
        insert into public.waitlist (user_id, position, referral_code)
        select user_id, n, 'PV-' || upper(lpad(to_hex(n), 6, '0')) from bulk_users"""),
    ("issuer_details, issuer_links, issuer_trading", """
        insert into public.issuer_details (name, ticker, is_hidden)
        select 'Bulk Issuer ' || n, ticker, not listed from bulk_issuers;
        insert into public.issuer_links (ticker) select ticker from bulk_issuers;
        insert into public.issuer_trading (ticker, base_price, price_step, current_price)
        select ticker, base_price, price_step, base_price from bulk_listed"""),
    ("portfolio (1 to 4 holdings a user)", f"""
        insert into public.portfolio (user_id, ticker, pv_amount, avg_cost_basis)
        select u.user_id, l.ticker,
               case when (u.n + h) %% 10 = 0 then ((u.n * 3 + h) %% 400)::numeric
                                                  + {_tail('u.n + h', 600)}
                    else ((u.n * 3 + h) %% 400)::numeric + {_tail('u.n * 11 + h', 20)} end,
               1 + {_tail('u.n + 5 * h', 16)}
        from bulk_users as u
        cross join generate_series(0, 3) as h
        join bulk_listed as l
          on l.k = 1 + (u.n * 7 + h * 131) %% (select count(*) from bulk_listed)
        where h <= u.n %% 4
        on conflict (user_id, ticker) do nothing"""),
    ("curve state: supply = holdings +- drift, price exact, pool ~ curve value", """
        with held as (
            select ticker, sum(pv_amount) as pv from public.portfolio group by ticker
        ),
        state as (
            select l.k, l.ticker, l.base_price, l.price_step,
                   greatest(0, coalesce(h.pv, 0) + case l.k %% 10
                       when 1 then 37.25 when 2 then 4.5 when 3 then 0.125
                       when 4 then -12.75 when 5 then -0.5 when 6 then -88
                       else 0 end) as supply
            from bulk_listed as l left join held as h using (ticker)
        )
        update public.issuer_trading as t
        set current_supply = s.supply,
            current_price = s.base_price + s.price_step * s.supply,
            total_usdp = s.base_price * s.supply + s.price_step * s.supply ^ 2 / 2
                + case when s.k %% 3 = 0 then -0.00000000000001
                       when s.k %% 17 = 0 then 3.27
                       when s.k %% 3 = 1 then 0.00000000000002 else 0 end
        from state as s where s.ticker = t.ticker"""),
    ("queue: finished in the last 7 days, old cancelled, and pending", f"""
        insert into public.queue (id, user_id, amount_usdp, amount_pv, ticker, order_type,
                                  status, date, created_at, updated_at)
        select gen_random_uuid(), u.user_id,
               case when q %% 3 = 0 then 0 else {_cents('(q %% 20000) + 1')} end,
               case when q %% 3 = 0 then round(((q %% 9000) + 1)::numeric / 10000, 4) else 0 end,
               l.ticker,
               (case when q %% 3 = 0 then 'sell' else 'buy' end)::public.order_type,
               (case when q %% 50 = 0 then 'failed' else 'completed' end)::public.queue_status,
               now() - (q %% 600000) * interval '1 second',
               now() - (q %% 600000) * interval '1 second',
               now() - (q %% 600000) * interval '1 second'
        from generate_series(1, %(finished)s) as q
        join bulk_users as u on u.n = 1 + (q * 13) %% %(users)s
        join bulk_listed as l on l.k = 1 + (q * 17) %% (select count(*) from bulk_listed);
        insert into public.queue (user_id, amount_usdp, amount_pv, ticker, order_type, status,
                                  date, created_at, updated_at)
        select u.user_id, {_cents('(q %% 5000) + 1')}, 0, l.ticker, 'buy', 'cancelled',
               now() - interval '30 days' + q * interval '1 second',
               now() - interval '30 days' + q * interval '1 second',
               now() - interval '30 days' + q * interval '1 second'
        from generate_series(1, %(cancelled)s) as q
        join bulk_users as u on u.n = 1 + (q * 29) %% %(users)s
        join bulk_listed as l on l.k = 1 + q %% (select count(*) from bulk_listed);
        -- pending: 3 users in 100 have 1, 4 or 5; sells of Sell All (4 decimals), typed ones
        -- with long decimals, and some larger than what the user still holds
        insert into public.queue (user_id, amount_usdp, amount_pv, ticker, order_type, date)
        select p.user_id,
               case when o %% 2 = 0 then {_cents('(u.n + o) %% 20000 + 1')}
                    + case when u.n %% 7 = 0 then {_tail('u.n', 12)} else 0 end
                    else 0 end,
               case when o %% 2 = 1 then
                   case when u.n %% 3 = 0 then trunc(p.pv_amount, 4)
                        when u.n %% 3 = 1 then round(p.pv_amount / 3, 11)
                        else p.pv_amount + 1 end
                    else 0 end,
               p.ticker,
               (case when o %% 2 = 0 then 'buy' else 'sell' end)::public.order_type,
               now() - interval '1 minute' + (u.n * 5 + o) * interval '1 millisecond'
        from bulk_users as u
        join public.portfolio as p on p.user_id = u.user_id
        cross join generate_series(0, 4) as o
        where u.n %% 100 in (3, 4, 10) and o <= u.n %% 5
          and p.ticker = (select min(p2.ticker) from public.portfolio as p2
                          where p2.user_id = u.user_id)"""),
    ("transactions: recent ones linked to their orders, older ones queue_id NULL", f"""
        create temporary table bulk_done on commit drop as
        select row_number() over (order by q.date, q.id) as k, q.*
        from public.queue as q where q.status = 'completed';
        insert into public.transactions (user_id, amount_usdp, ticker, order_type, status,
            avg_price_paid, pv_traded, start_price, end_price, date, queue_id, created_at,
            updated_at)
        select coalesce(d.user_id, u.user_id),
               case when t %% 20 = 0 then ((t %% 30000) + 1)::numeric / 100 + {_tail('t', 990)}
                    when t %% 3 = 0 then ((t %% 30000) + 1)::numeric / 100 + {_tail('t * 3', 12)}
                    else {_cents('(t %% 30000) + 1')} end,
               coalesce(d.ticker, l.ticker),
               coalesce(d.order_type,
                        (case when t %% 3 = 0 then 'sell' else 'buy' end)::public.order_type),
               'completed',
               1 + {_tail('t * 5', 16)},
               case when t %% 20 = 0 then ((t %% 900) + 1)::numeric / 10 + {_tail('t', 990)}
                    else ((t %% 900) + 1)::numeric / 10 + {_tail('t * 7', 18)} end,
               1 + {_tail('t', 18)},
               1 + {_tail('t + 1', 18)},
               coalesce(d.date, now() - interval '7 days' - (t %% 5000000) * interval '1 second'),
               d.id,
               coalesce(d.date, now() - interval '7 days' - (t %% 5000000) * interval '1 second'),
               coalesce(d.date, now() - interval '7 days' - (t %% 5000000) * interval '1 second')
        from generate_series(1, %(trades)s) as t
        left join bulk_done as d on d.k = t
        join bulk_users as u on u.n = 1 + (t * 31) %% %(users)s
        join bulk_listed as l on l.k = 1 + (t * 37) %% (select count(*) from bulk_listed)"""),
    ("price_history: listing ticks, then ticks sharing processing times", f"""
        insert into public.price_history (ticker, price, supply, timestamp)
        select l.ticker, l.base_price, 0, now() - interval '90 days' from bulk_listed as l;
        insert into public.price_history (ticker, price, supply, timestamp)
        select l.ticker,
               l.base_price + l.price_step * ((g.k %% 5000)::numeric + {_tail('g.k', 40)}),
               (g.k %% 5000)::numeric + {_tail('g.k', 40)},
               -- runs of up to 8 ticks share one timestamp, as one processing call's trades
               now() - interval '90 days' + (g.k / 8) * interval '7 seconds'
        from generate_series(1, greatest(%(ticks)s - (select count(*) from bulk_listed), 0)) as g (k)
        join bulk_listed as l on l.k = 1 + (g.k / 8) %% (select count(*) from bulk_listed)"""),
    ("issuer_stats_cache", """
        insert into public.issuer_stats_cache (ticker, current_price, volume_24h, holders,
            market_cap, circulating_supply)
        select t.ticker, t.current_price, 0,
               (select count(*) from public.portfolio as p
                where p.ticker = t.ticker and p.pv_amount > 0),
               t.total_usdp, t.current_supply
        from public.issuer_trading as t"""),
]


def fabricate_legacy_market_bulk(conn: psycopg.Connection, *, users: int = 100_000,
                                 trades: int = 1_000_000, ticks: int = 1_000_000,
                                 issuers: int = 1_000, verbose: bool = False) -> dict:
    """Fill an empty legacy schema (apply_legacy_schema) in one transaction. `conn` must
    be a superuser's (supabase_admin: triggers and foreign keys are switched off while
    writing). Returns the seconds each step took and the row counts."""
    params = {"users": users, "issuers": issuers, "trades": trades, "ticks": ticks,
              "finished": max(1, trades // 10), "cancelled": max(1, trades // 100)}
    timings: dict[str, float] = {}
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute("select setseed(0.2026)")
        for label, sql in STEPS:
            start = time.perf_counter()
            # client-side binding: a step may hold several statements
            with psycopg.ClientCursor(conn) as cur:
                cur.execute(sql, params)
            timings[label] = round(time.perf_counter() - start, 2)
            if verbose:
                print(f"  {timings[label]:7.2f} s  {label}", flush=True)
    conn.execute("analyze")
    counts = dict(conn.execute("""
        select 'users', count(*) from public.users union all
        select 'holdings', count(*) from public.portfolio union all
        select 'listed_issuers', count(*) from public.issuer_trading union all
        select 'trades', count(*) from public.transactions union all
        select 'trades_without_queue_id', count(*) from public.transactions
            where queue_id is null union all
        select 'ticks', count(*) from public.price_history union all
        select 'pending', count(*) from public.queue where status = 'pending'
    """).fetchall())
    return {"seconds": timings, "total_seconds": round(sum(timings.values()), 2)} | counts
