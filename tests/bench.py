"""Benchmark of the order engine and the scheduled jobs (issue 6).

    .venv/bin/python tests/bench.py --scale full --runs 3     # make bench
    .venv/bin/python tests/bench.py --scale tiny --runs 1     # what make test runs

Starts a throwaway cluster exactly as the tests do (tests/harness.py), builds each
scenario's data set-based in SQL, runs it `--runs` times on freshly loaded data and prints
a table: every run, the median, how the figure changes with size, the target and whether
the median meets it (scenarios 1-4 against issue 15's targets, the strictest asked). Not an
assertion: these machines are noisy. The cluster runs with
fsync=off, synchronous_commit=off, full_page_writes=off (scripts/server-options.sh), so
the figures are CPU figures, not disk figures; its shared_buffers is a Supabase Micro
compute's, 256MB. `--set NAME=VALUE` overrides a server setting for one run, e.g.
`--set shared_buffers=128MB` for PostgreSQL's own default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, Cluster, throwaway_cluster  # noqa: E402
from legacy import apply_legacy_schema  # noqa: E402
from legacy.bulk import fabricate_legacy_market_bulk  # noqa: E402
from postgrest_standin import PgNetWorker, SupabaseApiStandin, serve_function  # noqa: E402

# ACCESS EXCLUSIVE locks held on the market tables (new or legacy), for scenario 10.
LOCK_POLL = """
    select l.pid, n.nspname || '.' || c.relname
    from pg_locks as l
    inner join pg_class as c on c.oid = l.relation
    inner join pg_namespace as n on n.oid = c.relnamespace
    where l.granted and l.mode = 'AccessExclusiveLock' and c.relkind = 'r'
      and n.nspname in ('public', 'pauv_legacy')
      and c.relname in ('issuer_details', 'issuer_trading', 'users', 'portfolio', 'queue',
                        'transactions', 'price_history', 'issuer_stats_cache')
"""

# Sizes per scale. "full" is what issue 6 asks for; "small" is a tenth of it for a quick
# look; "tiny" only proves every scenario still runs (make test).
SCALES: dict[str, dict[str, int]] = {
    "full": dict(users=10_000, tickers=100, drain_small=10_000, drain=100_000,
                 retained=1_000_000, hot=20_000, placements=20_000,
                 stats_issuers=1_000, stats_issuers_big=10_000, stats_trades=1_000_000,
                 snap_issuers=1_000, snap_trades=100_000, catchup_days=7,
                 cleanup=1_000_000, adopt_users=100_000, adopt_trades=1_000_000,
                 adopt_ticks=1_000_000, wake_rate=1_000, wake_seconds=30),
    "small": dict(users=2_000, tickers=100, drain_small=2_000, drain=20_000,
                  retained=200_000, hot=4_000, placements=4_000,
                  stats_issuers=100, stats_issuers_big=1_000, stats_trades=100_000,
                  snap_issuers=100, snap_trades=10_000, catchup_days=7,
                  cleanup=200_000, adopt_users=10_000, adopt_trades=100_000,
                  adopt_ticks=100_000, wake_rate=200, wake_seconds=10),
    "tiny": dict(users=100, tickers=10, drain_small=100, drain=500,
                 retained=2_000, hot=200, placements=100,
                 stats_issuers=10, stats_issuers_big=20, stats_trades=1_000,
                 snap_issuers=10, snap_trades=500, catchup_days=2,
                 cleanup=2_000, adopt_users=200, adopt_trades=2_000, adopt_ticks=2_000,
                 wake_rate=50, wake_seconds=2),
}

BALANCE = 1_000_000  # USDP each user starts with: enough for every buy of the bench


def ticker_sql(expr: str) -> str:
    """SQL for the n-th bench ticker: T0001, T0002, ..."""
    return f"('T' || lpad(({expr})::text, 5, '0'))"


def user_sql(expr: str) -> str:
    """SQL for the n-th bench user's id, deterministic."""
    return f"(md5('bench-user-' || ({expr}))::uuid)"


# --- loading -------------------------------------------------------------------------------


def admin(cluster: Cluster) -> psycopg.Connection:
    return cluster.connect("supabase_admin", autocommit=True)


def reset(cluster: Cluster) -> None:
    """Empty every market table (as the tests' `market` fixture does) and pg_net's queue."""
    with admin(cluster) as conn:
        tables = conn.execute(
            "select string_agg(format('%I.%I', schemaname, tablename), ', ')"
            " from pg_tables where schemaname in ('public', 'pauv')"
        ).fetchone()[0]
        conn.execute(f"truncate {tables}, auth.users, net.http_request_queue"
                     " restart identity cascade")


def load_market(cluster: Cluster, *, tickers: int, users: int) -> None:
    """Issuers T00001.. and users with BALANCE USDP each, deposited set-based with the
    ledger rows deposit_usdp writes, so the conservation invariant holds."""
    reset(cluster)
    with admin(cluster) as conn:
        conn.execute(f"""
            insert into public.issuer_details (ticker, name)
            select {ticker_sql('i')}, 'Bench issuer ' || i from generate_series(1, {tickers}) as i;
            insert into public.issuer_trading (ticker, base_price, price_step)
            select ticker, 1.00, 0.001 from public.issuer_details;
            insert into auth.users (id, email, raw_user_meta_data)
            select {user_sql('i')}, 'bench' || i || '@example.test', '{{}}'::jsonb
            from generate_series(1, {users}) as i;
            update public.users set usdp_balance = {BALANCE};
            insert into pauv.usdp_movements (user_id, amount)
            select user_id, {BALANCE} from public.users;
        """)


def load_finished(cluster: Cluster, *, rows: int, tickers: int, users: int,
                  age: str = "30 days") -> None:
    """`rows` finished queue rows from `age` ago (90% completed, each with its trade, 5%
    failed, 5% cancelled): what a queue retains before cleanup. Bulk-loaded with triggers
    off (session_replication_role = replica): they are history, not new orders."""
    with admin(cluster) as conn:
        conn.execute(f"""
            set session_replication_role = replica;
            insert into public.queue (
                user_id, ticker, order_type, amount_usdp, status, date, processed_at,
                error_message, created_at, updated_at
            )
            select
                {user_sql(f'1 + i % {users}')}, {ticker_sql(f'1 + i % {tickers}')}, 'buy', 10,
                s.status, d.at, d.at + interval '50 ms',
                case when s.status = 'failed' then 'insufficient balance' end, d.at, d.at
            from generate_series(1, {rows}) as i
            cross join lateral (
                select case i % 20 when 0 then 'failed' when 1 then 'cancelled'
                    else 'completed' end as status
            ) as s
            cross join lateral (
                select now() - interval '{age}' + i * interval '1 ms' as at
            ) as d;
            insert into public.transactions (
                user_id, amount_usdp, ticker, order_type, avg_price_paid, pv_traded,
                start_price, end_price, date, queue_id
            )
            select q.user_id, 10, q.ticker, 'buy', 1, 10, 1, 1, q.processed_at, q.id
            from public.queue as q where q.status = 'completed' order by q.id;
            set session_replication_role = origin;
        """)


def plan_orders(cluster: Cluster, *, orders: int, tickers: int, users: int,
                buy_share: float = 0.8, seed: float = 0.42, halves: bool = False) -> None:
    """Queue `orders` pending orders (buy_share buys, the rest sells) over the tickers and
    users, in a random but repeatable order. Sellers first get holdings by executing one
    buy per (user, ticker) they sell, through the engine. With `halves` the market is two
    markets side by side: odd users trade only odd tickers, even users only even ones (each
    order's ticker moved to its neighbour of the user's parity; same random draws)."""
    with admin(cluster) as conn:
        conn.execute("drop table if exists public.bench_plan")
        conn.execute(f"select setseed({seed})")
        conn.execute(f"""
            create unlogged table public.bench_plan as
            select
                k,
                1 + floor(random() * {users})::integer as u,
                1 + floor(random() * {tickers})::integer as t,
                random() < {buy_share} as is_buy,
                round((5 + random() * 45)::numeric, 2) as usdp,
                round((0.5 + random() * 2)::numeric, 2) as pv
            from generate_series(1, {orders}) as k
        """)
        if halves:
            conn.execute("update public.bench_plan set t = 2 * ((t - 1) / 2) + 1 + u % 2")
        sellers = conn.execute(f"""
            insert into public.queue (user_id, ticker, order_type, amount_usdp)
            select {user_sql('u')}, {ticker_sql('t')}, 'buy', 100
            from (select distinct u, t from public.bench_plan where not is_buy) as s
            order by u, t
        """).rowcount
    if sellers:
        drain_all(cluster)
    with admin(cluster) as conn:
        conn.execute(f"""
            insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv)
            select
                {user_sql('u')}, {ticker_sql('t')},
                case when is_buy then 'buy' else 'sell' end,
                case when is_buy then usdp end,
                case when not is_buy then pv end
            from public.bench_plan
            order by k;
            drop table public.bench_plan;
        """)


def vacuum(cluster: Cluster) -> None:
    with admin(cluster) as conn:
        conn.execute("vacuum analyze")


def audit_clean(cluster: Cluster) -> str:
    with cluster.connect(autocommit=True) as conn:
        rows = conn.execute("select * from public.audit_market_invariants()").fetchall()
    if rows:
        raise AssertionError(f"audit found violations: {rows[:5]}")
    return "audit clean"


# --- the engine's callers -----------------------------------------------------------------


def processor(cluster: Cluster) -> psycopg.Connection:
    """A caller as the sweeper and the edge function are: the service role."""
    conn = cluster.connect(autocommit=True)
    conn.execute("set role service_role")
    return conn


def drain_loop(conn: psycopg.Connection, max_orders: int = 1000) -> int:
    """Loop process_all_pending_orders until nothing is pending. When another caller holds
    all the remaining work it backs off 5 ms instead of spinning."""
    total = 0
    while True:
        r = conn.execute("select public.process_all_pending_orders(%s, 5)",
                         (max_orders,)).fetchone()[0]
        total += r["total_processed"]
        if not r["has_more"]:
            return total
        if r["total_processed"] == 0:
            time.sleep(0.005)


def drain_all(cluster: Cluster) -> int:
    with processor(cluster) as conn:
        return drain_loop(conn, 10_000)


def pending(cluster: Cluster) -> int:
    with cluster.connect(autocommit=True) as conn:
        return conn.execute("select count(*) from public.queue where status = 'pending'").fetchone()[0]


def run_in_threads(work, count: int) -> float:
    """Run work(0) ... work(count - 1) in as many threads at once; the wall seconds they
    took together. The first exception any of them raised is raised here."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def timed_drain(cluster: Cluster, callers: int = 1, max_orders: int = 1000) -> tuple[int, float]:
    """Orders drained and wall seconds, with `callers` connections looping at once."""
    conns = [processor(cluster) for _ in range(callers)]
    counts = [0] * callers

    def run(i: int) -> None:
        counts[i] = drain_loop(conns[i], max_orders)

    try:
        elapsed = run_in_threads(run, callers)
    finally:
        for c in conns:
            c.close()
    left = pending(cluster)
    if left:
        raise AssertionError(f"{left} orders still pending after the drain")
    return sum(counts), elapsed


def cpu_scaling(cluster: Cluster, statements: int = 8) -> float:
    """The machine's own speed-up with 2 connections busy at once: the same CPU-only
    statement (no table, no lock, no WAL) run on one connection, then on two together;
    their throughput ratio. What 2 callers could reach if nothing but CPU were shared."""
    sql = "select sum(sqrt(g::numeric)) from generate_series(1, 200000) as g"
    conns = [processor(cluster) for _ in range(2)]

    def run(i: int) -> None:
        for _ in range(statements):
            conns[i].execute(sql).fetchone()

    try:
        run(0)  # warm both the cache and the connection
        one = statements / run_in_threads(run, 1)
        two = 2 * statements / run_in_threads(run, 2)
    finally:
        for c in conns:
            c.close()
    return two / one


class Placer:
    """A connection placing buy orders as signed-in users, one transaction each, timing
    every placement client-side."""

    def __init__(self, cluster: Cluster):
        self.conn = cluster.connect()
        self.latencies: list[float] = []
        self.refused = 0
        ids = self.conn.execute("select user_id from public.users order by user_id").fetchall()
        self.users = [str(r[0]) for r in ids]
        self.tickers = [r[0] for r in self.conn.execute(
            "select ticker from public.issuer_trading order by ticker").fetchall()]
        self.conn.commit()

    def place(self, user_id: str, ticker: str, amount: str = "10") -> None:
        claims = json.dumps({"role": "authenticated", "sub": user_id})
        started = time.perf_counter()
        self.conn.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', %s, true)", (claims,))
        try:
            self.conn.execute("select id from public.place_order(%s, 'buy', %s)", (ticker, amount))
            self.conn.commit()
        except psycopg.Error as e:
            # Only the 5-pending-orders limit is expected (tiny scales wrap around users).
            self.conn.rollback()
            if e.sqlstate != "PA003":
                raise
            self.refused += 1
        self.latencies.append(time.perf_counter() - started)

    def start_round_robin(self) -> None:
        """Place 1-USDP buys in a thread, round-robin over self.users and self.tickers, until
        stop_round_robin()."""
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []

        def run() -> None:
            k = 0
            try:
                while not self.stopping.is_set():
                    self.place(self.users[k % len(self.users)],
                               self.tickers[k % len(self.tickers)], "1")
                    k += 1
            except BaseException as e:  # noqa: BLE001 - raised by stop_round_robin
                self.errors.append(e)

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def stop_round_robin(self) -> None:
        """Stop the placing thread and the connection; raise what the thread raised."""
        self.stopping.set()
        self.thread.join()
        self.close()
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        self.conn.close()


# --- the schema's write ceiling (issue 15) ------------------------------------------------

# What a drain must write, at the least, for the trades the engine made: set-based, one
# transaction per CEILING_CHUNK orders (in ticker FIFO order), one statement per kind of
# write, users and holdings written once per user per chunk with their values after it.
# Same schema: every constraint, foreign key, index and trigger of the tables is in place.
# The rows other rows point to are locked or written first (issuers, users), so the
# foreign-key checks of the inserts after them find rows this transaction already holds, as
# the engine's do (an issuer's row is locked by any correct writer: it serialises the curve).
# Every update sets updated_at itself, as the engine's do, so the updated_at triggers skip.
CEILING_CHUNK = 1000

# A chunk's half of the market (halves plans): chunks of the even half are numbered from
# CEILING_HALF on, so two connections can write one half each.
CEILING_HALF = 1_000_000


def ceiling_capture(halves: bool = False) -> str:
    """SQL that records the pending orders in chunks, before the engine's drain. With
    `halves` the chunks follow each half of the market (plan_orders(halves=True))."""
    if halves:
        half = "substr(q.ticker, 2)::integer % 2"
        chunk = (f"{half} * {CEILING_HALF} + (row_number() over (partition by {half}"
                 f" order by q.ticker, q.date, q.id) - 1) / {CEILING_CHUNK}")
    else:
        chunk = f"(row_number() over (order by q.ticker, q.date, q.id) - 1) / {CEILING_CHUNK}"
    return CEILING_CAPTURE.replace("{chunk}", chunk)


CEILING_CAPTURE = """
    drop schema if exists bench cascade;
    create schema bench;
    create unlogged table bench.run_orders as
    select q.id, q.ticker, q.user_id, {chunk} as chunk
    from public.queue as q where q.status = 'pending';
    create unlogged table bench.start_holdings as
    select user_id, ticker, pv_amount from public.portfolio;
    create unlogged table bench.start_pools as
    select ticker, total_usdp from public.issuer_trading;
"""

CEILING_OUTCOME = """
    create unlogged table bench.q as
    select o.chunk, q.id, q.status, q.error_message, q.processed_at
    from bench.run_orders as o inner join public.queue as q on q.id = o.id;
    create unlogged table bench.tx as
    select o.chunk, x.id as old_id, x.user_id, x.amount_usdp, x.ticker, x.order_type,
        x.avg_price_paid, x.pv_traded, x.start_price, x.end_price, x.date, x.queue_id,
        h.price as tick_price, h.supply as tick_supply, h.timestamp as tick_at,
        case x.order_type when 'buy' then -x.amount_usdp else x.amount_usdp end as usdp_delta,
        case x.order_type when 'buy' then x.pv_traded else -x.pv_traded end as pv_delta
    from bench.run_orders as o
    inner join public.transactions as x on x.queue_id = o.id
    inner join public.price_history as h on h.transaction_id = x.id;
    create index on bench.q (chunk);
    create index on bench.tx (chunk);
    create index on bench.tx (queue_id);
    create unlogged table bench.userw as
    select chunk, user_id, sum(usdp_delta) as delta from bench.tx group by chunk, user_id;
    create index on bench.userw (chunk);
    create unlogged table bench.holdw as
    select w.chunk, w.user_id, w.ticker,
        coalesce(s.pv_amount, 0) + w.moved as pv,
        case when coalesce(s.pv_amount, 0) + w.moved = 0 then 0 else p.avg_cost_basis end
            as basis
    from (
        select chunk, user_id, ticker, sum(sum(pv_delta)) over (
            partition by user_id, ticker order by chunk) as moved
        from bench.tx group by chunk, user_id, ticker
    ) as w
    inner join public.portfolio as p on p.user_id = w.user_id and p.ticker = w.ticker
    left join bench.start_holdings as s on s.user_id = w.user_id and s.ticker = w.ticker;
    create index on bench.holdw (chunk);
    create unlogged table bench.issuerw as
    select distinct on (w.chunk, w.ticker) w.chunk, w.ticker, w.tick_supply as supply,
        s.total_usdp - sum(w.usdp_delta) over (
            partition by w.ticker order by w.chunk, w.old_id) as pool
    from bench.tx as w inner join bench.start_pools as s on s.ticker = w.ticker
    order by w.chunk, w.ticker, w.old_id desc;
    create index on bench.issuerw (chunk);
    create unlogged table bench.final as
    select
        (select array_agg((user_id, usdp_balance) order by user_id)::text from public.users)
            as users,
        (select array_agg((user_id, ticker, pv_amount, avg_cost_basis) order by user_id, ticker)
            ::text from public.portfolio) as portfolio,
        (select array_agg((ticker, current_supply, total_usdp, current_price) order by ticker)
            ::text from public.issuer_trading) as issuers,
        (select count(*) from public.transactions) as trades;
    analyze bench.q, bench.tx, bench.userw, bench.holdw, bench.issuerw;
"""

CEILING_WRITE = """
    select from public.issuer_trading as t
    where t.ticker in (select w.ticker from bench.issuerw as w where w.chunk = %(chunk)s)
    for no key update;
    update public.users as u set usdp_balance = u.usdp_balance + w.delta, updated_at = now()
    from bench.userw as w where w.chunk = %(chunk)s and u.user_id = w.user_id;
    update public.queue as q
    set status = w.status, error_message = w.error_message, processed_at = w.processed_at,
        updated_at = now()
    from bench.q as w where w.chunk = %(chunk)s and q.id = w.id;
    insert into public.portfolio as p (user_id, ticker, pv_amount, avg_cost_basis)
    select user_id, ticker, pv, basis from bench.holdw where chunk = %(chunk)s
    on conflict (user_id, ticker) do update
    set pv_amount = excluded.pv_amount, avg_cost_basis = excluded.avg_cost_basis,
        updated_at = excluded.updated_at;
    with trade as (
        insert into public.transactions (
            user_id, amount_usdp, ticker, order_type, avg_price_paid, pv_traded,
            start_price, end_price, date, queue_id
        )
        select user_id, amount_usdp, ticker, order_type, avg_price_paid, pv_traded,
            start_price, end_price, date, queue_id
        from bench.tx where chunk = %(chunk)s order by old_id
        returning id, queue_id
    )
    insert into public.price_history (ticker, price, supply, timestamp, transaction_id)
    select w.ticker, w.tick_price, w.tick_supply, w.tick_at, trade.id
    from trade inner join bench.tx as w on w.queue_id = trade.queue_id and w.chunk = %(chunk)s
    order by trade.id;
    update public.issuer_trading as t set current_supply = w.supply, total_usdp = w.pool
    from bench.issuerw as w where w.chunk = %(chunk)s and t.ticker = w.ticker;
"""


def write_ceiling(cluster: Cluster, connections: int = 1) -> tuple[int, float]:
    """Replays the captured outcome (bench.*) with the minimum set-based writes, one
    transaction per chunk, as the service role; checks that it leaves the market exactly
    as the engine did. Orders written and wall seconds. With 2 connections (a halves
    capture) each writes one half of the market: no row either writes or locks is the
    other's, so neither waits for the other."""
    with admin(cluster) as conn:
        chunks = [r[0] for r in conn.execute("select distinct chunk from bench.q order by 1")]
        orders = conn.execute("select count(*) from bench.q").fetchone()[0]
        conn.execute("grant usage on schema bench to service_role;"
                     " grant select on all tables in schema bench to service_role")
    shares = ([chunks] if connections == 1
              else [[c for c in chunks if c // CEILING_HALF == i] for i in range(connections)])
    conns = [processor(cluster) for _ in shares]

    def write(i: int) -> None:
        conns[i].autocommit = False
        for chunk in shares[i]:
            conns[i].execute(CEILING_WRITE % {"chunk": chunk})
            conns[i].commit()

    try:
        elapsed = run_in_threads(write, len(shares))
    finally:
        for c in conns:
            c.close()
    with admin(cluster) as conn:
        same = conn.execute("""
            select f.users = (select array_agg((user_id, usdp_balance) order by user_id)::text
                              from public.users)
               and f.portfolio = (select array_agg((user_id, ticker, pv_amount, avg_cost_basis)
                                  order by user_id, ticker)::text from public.portfolio)
               and f.issuers = (select array_agg((ticker, current_supply, total_usdp,
                                current_price) order by ticker)::text from public.issuer_trading)
               and f.trades = (select count(*) from public.transactions)
            from bench.final as f
        """).fetchone()[0]
    if not same:
        raise AssertionError("the ceiling's writes did not end where the engine's did")
    return orders, elapsed


# --- results ---------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    size: str
    unit: str
    target: str = ""
    check: Callable[[float], bool] | None = None
    runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    def verdict(self) -> str:
        if self.check is None or not self.runs:
            return ""
        return "met" if self.check(self.median) else "MISSED"


def fmt(x: float) -> str:
    if x != x:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3f}" if abs(x) < 1 else f"{x:.2f}"


def print_table(figures: list[Figure]) -> None:
    head = ("scenario", "size", "runs", "median", "unit", "target", "verdict")
    rows = [head] + [
        (f.key + " " + f.label, f.size, " / ".join(fmt(r) for r in f.runs), fmt(f.median), f.unit,
         f.target, f.verdict())
        for f in figures
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    notes = [f for f in figures if f.note]
    if notes:
        print()
        for f in notes:
            print(f"{f.key}: {f.note}")


# --- scenarios -----------------------------------------------------------------------------


class Bench:
    def __init__(self, cluster: Cluster, scale: dict[str, int], runs: int, verbose: bool):
        self.c = cluster
        self.s = scale
        self.runs = runs
        self.verbose = verbose
        self.figures: dict[str, Figure] = {}

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"  [{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def fig(self, key: str, **kw) -> Figure:
        if key not in self.figures:
            self.figures[key] = Figure(key=key, **kw)
        return self.figures[key]

    def load_drain(self, orders: int, tickers: int, retained: int = 0,
                   halves: bool = False) -> None:
        s = self.s
        load_market(self.c, tickers=tickers, users=s["users"])
        if retained:
            load_finished(self.c, rows=retained, tickers=tickers, users=s["users"])
        plan_orders(self.c, orders=orders, tickers=tickers, users=s["users"], halves=halves)
        vacuum(self.c)

    def drain_once(self, orders: int, tickers: int, retained: int = 0,
                   callers: int = 1, max_orders: int = 1000, halves: bool = False) -> float:
        self.load_drain(orders, tickers, retained, halves)
        done, secs = timed_drain(self.c, callers, max_orders)
        if done != orders:
            raise AssertionError(f"drained {done} orders, expected {orders}")
        self.log(f"{orders} orders, {tickers} tickers{', halves' if halves else ''},"
                 f" {retained} retained, {callers} caller(s): p_max_orders {max_orders}:"
                 f" {secs:.2f} s, {done / secs:,.0f} orders/s, {audit_clean(self.c)}")
        return done / secs

    def ceiling_once(self, orders: int, tickers: int, halves: bool = False,
                     connections: tuple[int, ...] = (1,)) -> tuple[float, list[float]]:
        """The engine's drain, then the same trades written by the minimum set-based
        writes on freshly reloaded, identical data, once per entry of `connections` (2: a
        halves market, one half each): engine orders/s and each ceiling's orders/s."""
        self.load_drain(orders, tickers, halves=halves)
        with admin(self.c) as conn:
            conn.execute(ceiling_capture(halves))
        done, secs = timed_drain(self.c)
        if done != orders:
            raise AssertionError(f"drained {done} orders, expected {orders}")
        engine = done / secs
        with admin(self.c) as conn:
            conn.execute(CEILING_OUTCOME)
        self.log(f"{orders} orders, {tickers} tickers{', halves' if halves else ''}, 1 caller:"
                 f" {secs:.2f} s, {engine:,.0f} orders/s, {audit_clean(self.c)}")
        ceilings = []
        for count in connections:
            self.load_drain(orders, tickers, halves=halves)
            written, wsecs = write_ceiling(self.c, count)
            if written != orders:
                raise AssertionError(f"the ceiling wrote {written} orders, expected {orders}")
            ceilings.append(written / wsecs)
            self.log(f"the same trades by the minimum set-based writes, {count} connection(s):"
                     f" {wsecs:.2f} s, {written / wsecs:,.0f} orders/s, {audit_clean(self.c)}")
        return engine, ceilings

    def scenario_1(self) -> None:
        s = self.s
        small = self.fig("1a", label="drain, 1 caller", unit="orders/s",
                         size=f"{s['drain_small']:,} orders / {s['tickers']} tickers / "
                              f"{s['users']:,} users")
        big = self.fig("1b", label="drain, 1 caller", unit="orders/s", target=">= 22,000",
                       check=lambda v: v >= 22_000,
                       size=f"{s['drain']:,} orders / {s['tickers']} tickers / "
                            f"{s['users']:,} users")
        ratio = self.fig("1c", label="per-order cost, large / small", unit="x",
                         target="<= 1.15", check=lambda v: v <= 1.15,
                         size=f"{s['drain']:,} vs {s['drain_small']:,}")
        ceiling = self.fig("1d", label="write ceiling: the same trades, minimum set-based writes",
                           unit="orders/s", size=f"{s['drain']:,} orders, {CEILING_CHUNK:,} per"
                                                 " transaction")
        share = self.fig("1e", label="engine / write ceiling (1b / 1d)", unit="x",
                         target=">= 0.9", check=lambda v: v >= 0.9, size="same run")
        for _ in range(self.runs):
            a = self.drain_once(s["drain_small"], s["tickers"])
            b, (c,) = self.ceiling_once(s["drain"], s["tickers"])
            small.runs.append(a)
            big.runs.append(b)
            ratio.runs.append(a / b)
            ceiling.runs.append(c)
            share.runs.append(b / c)
        big.note = "audit clean after every drain"
        ceiling.note = ("users and holdings once per user per transaction; every constraint,"
                        " foreign key, index and trigger in place; ends where the engine ended")

    def scenario_2(self) -> None:
        """The drain with finished rows retained, each run paired with the same drain
        without them just before it: the ratio of a pair is not moved by the machine's
        drift between scenarios (2b was 2a against scenario 1's median, 1.05-1.19x across
        processes while one profile put it at 1.05x)."""
        s = self.s
        f = self.fig("2a", label="drain with finished rows retained", unit="orders/s",
                     size=f"{s['drain']:,} orders + {s['retained']:,} finished rows")
        ratio = self.fig("2b", label="per-order cost, 2a / 2c (paired runs)", unit="x",
                         target="<= 1.15", check=lambda v: v <= 1.15,
                         size=f"{s['retained']:,} retained")
        base = self.fig("2c", label="the same drain without them, run before each 2a",
                        unit="orders/s", size=f"{s['drain']:,} orders")
        for _ in range(self.runs):
            without = self.drain_once(s["drain"], s["tickers"])
            retained = self.drain_once(s["drain"], s["tickers"], retained=s["retained"])
            base.runs.append(without)
            f.runs.append(retained)
            ratio.runs.append(without / retained)

    def scenario_3(self) -> None:
        s = self.s
        f = self.fig("3", label="drain, one hot ticker", unit="orders/s", target=">= 15,000",
                     check=lambda v: v >= 15_000,
                     size=f"{s['hot']:,} orders / 1 ticker / {s['users']:,} users")
        # Issue 15: whether the hot ticker's rate is the engine's or its writes' limit.
        ceiling = self.fig("3b", label="hot ticker write ceiling: the same trades, minimum writes",
                           unit="orders/s", size=f"{s['hot']:,} orders, {CEILING_CHUNK:,} per"
                                                 " transaction")
        share = self.fig("3c", label="hot ticker engine / write ceiling (3 / 3b)", unit="x",
                         size="same run")
        for _ in range(self.runs):
            engine, (written,) = self.ceiling_once(s["hot"], 1)
            f.runs.append(engine)
            ceiling.runs.append(written)
            share.runs.append(engine / written)

    def scenario_4(self) -> None:
        s = self.s
        f = self.fig("4a", label="drain, 2 callers at once", unit="orders/s",
                     size=f"{s['drain']:,} orders / {s['tickers']} tickers, 1,000 per call")
        ratio = self.fig("4b", label="speed-up vs 1 caller (1b)", unit="x", target=">= 1.7",
                         check=lambda v: v >= 1.7, size="2 callers / 1, 1,000 per call")
        one = self.fig("4c", label="drain, 1 caller", unit="orders/s",
                       size=f"{s['drain']:,} orders / {s['tickers']} tickers, 200 per call")
        two = self.fig("4d", label="drain, 2 callers at once", unit="orders/s",
                       size=f"{s['drain']:,} orders / {s['tickers']} tickers, 200 per call")
        ratio2 = self.fig("4e", label="speed-up, 2 callers / 1", unit="x", target=">= 1.7",
                          check=lambda v: v >= 1.7, size="200 per call")
        machine = self.fig("4f", label="the machine's speed-up, 2 connections / 1", unit="x",
                           size="CPU-only SQL: no table, lock or WAL")
        # Issue 15: how far two writers can scale on this machine and schema when they
        # share no row, for the engine and for the minimum writes: a market of two halves
        # that share no user and no ticker (odd users trade odd tickers only).
        halves = f"{s['drain']:,} orders / two halves of {s['tickers'] // 2} tickers"
        h_one = self.fig("4g", label="halves: drain, 1 caller", unit="orders/s", size=halves)
        h_two = self.fig("4h", label="halves: drain, 2 callers at once", unit="orders/s",
                         size=halves + ", 1,000 per call")
        h_ratio = self.fig("4i", label="halves: engine's speed-up (4h / 4g)", unit="x",
                           size="same run")
        c_one = self.fig("4j", label="halves: write ceiling, 1 connection", unit="orders/s",
                         size=halves)
        c_two = self.fig("4k", label="halves: write ceiling, 2 connections, one half each",
                         unit="orders/s", size=halves)
        c_ratio = self.fig("4l", label="halves: write ceiling's speed-up (4k / 4j)", unit="x",
                           size="same run: what two writers sharing no row reach")
        for _ in range(self.runs):
            machine.runs.append(cpu_scaling(self.c))
            f.runs.append(self.drain_once(s["drain"], s["tickers"], callers=2))
            one.runs.append(self.drain_once(s["drain"], s["tickers"], max_orders=200))
            two.runs.append(self.drain_once(s["drain"], s["tickers"], callers=2, max_orders=200))
            e1, (w1, w2) = self.ceiling_once(s["drain"], s["tickers"], halves=True,
                                             connections=(1, 2))
            e2 = self.drain_once(s["drain"], s["tickers"], callers=2, halves=True)
            h_one.runs.append(e1)
            h_two.runs.append(e2)
            h_ratio.runs.append(e2 / e1)
            c_one.runs.append(w1)
            c_two.runs.append(w2)
            c_ratio.runs.append(w2 / w1)
        if "1b" in self.figures:
            base = self.figures["1b"].median
            ratio.runs = [v / base for v in f.runs]
        ratio2.runs = [v / one.median for v in two.runs]

    def scenario_11(self) -> None:
        """Issue 15 item 3: placements while a drain runs. One connection places buys (of
        users with no other order, so none is refused) while one caller drains the
        100,000 orders; every placement is timed client-side."""
        s = self.s
        size = f"{s['drain']:,} orders / {s['tickers']} tickers, 1 placing connection"
        p50 = self.fig("11a", label="place_order during a drain, p50", unit="ms", size=size)
        p99 = self.fig("11b", label="place_order during a drain, p99", unit="ms",
                       target="<= 50", check=lambda v: v <= 50, size=size)
        # The time until the drain's own orders are all executed: a drain that goes on until
        # nothing is pending chases the placements (a few per call) for as long as they
        # keep coming, and its rate was that chase's (3,000-9,000 orders/s by chance).
        drained = self.fig("11c", label="drain with placements arriving", unit="orders/s",
                           size=f"{s['drain']:,} orders until the last of them executed")
        placers = s["users"] // 2
        for _ in range(self.runs):
            self.load_drain(s["drain"], s["tickers"])
            with admin(self.c) as conn:
                conn.execute(f"""
                    insert into auth.users (id, email, raw_user_meta_data)
                    select {user_sql('-i')}, 'placer' || i || '@example.test', '{{}}'::jsonb
                    from generate_series(1, {placers}) as i;
                    update public.users set usdp_balance = {BALANCE} where usdp_balance = 0;
                    insert into pauv.usdp_movements (user_id, amount)
                    select {user_sql('-i')}, {BALANCE} from generate_series(1, {placers}) as i;
                """)
            placer = Placer(self.c)
            placer.users = [str(r[0]) for r in placer.conn.execute(
                f"select {user_sql('-i')} from generate_series(1, {placers}) as i").fetchall()]
            placer.conn.commit()
            with admin(self.c) as conn:
                planned = conn.execute("select max(date) from public.queue").fetchone()[0]
            placer.start_round_robin()
            try:
                time.sleep(0.3)  # the placing loop is warm before the drain starts
                placer.latencies.clear()
                with processor(self.c) as conn, admin(self.c) as watch:
                    started = time.perf_counter()
                    done = 0
                    while True:
                        r = conn.execute("select public.process_all_pending_orders(1000, 5)"
                                         ).fetchone()[0]
                        done += r["total_processed"]
                        # One probe of the pending FIFO index per call.
                        if not watch.execute(
                                "select exists (select from public.queue where status ="
                                " 'pending' and date <= %s)", (planned,)).fetchone()[0]:
                            break
                    elapsed = time.perf_counter() - started
            finally:
                placer.stop_round_robin()
            lat = sorted(placer.latencies)
            p50.runs.append(lat[len(lat) // 2] * 1000)
            p99.runs.append(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000)
            drained.runs.append(s["drain"] / elapsed)
            p99.note = (f"{len(lat):,} placements during the drain ({placer.refused} refused),"
                        f" max {lat[-1] * 1000:.1f} ms")
            drain_all(self.c)
            self.log(f"drain: {s['drain']} orders executed in {elapsed:.2f} s, with {done} in all"
                     f" and {len(lat)} placements:"
                     f" p50 {p50.runs[-1]:.1f} ms, p99 {p99.runs[-1]:.1f} ms,"
                     f" max {lat[-1] * 1000:.1f} ms; {audit_clean(self.c)}")

    def configure_webhook(self, project_url: str, secret_key: str) -> None:
        """Vault's two secrets, as docs/webhook.md sets them; no wake queued, no drain."""
        with admin(self.c) as conn:
            conn.execute("delete from vault.secrets where name in"
                         " ('project_url', 'process_queue_secret_key', 'process_queue_invoke_key')")
            conn.execute("select vault.create_secret(%s, 'project_url')", (project_url,))
            conn.execute("select vault.create_secret(%s, 'process_queue_secret_key')",
                         (secret_key,))
            conn.execute("insert into pauv.process_queue_wake_state default values"
                         " on conflict (id) do update set wake_requested_at = null,"
                         " drain_id = null, drain_seen_at = null")

    def scenario_8(self) -> None:
        s = self.s
        f = self.fig("8a", label="place_order, 4 connections", unit="placements/s",
                     size=f"{s['placements']:,} placements / {s['users']:,} users")
        hooks = self.fig("8b", label="webhook requests, function unreachable", unit="requests",
                         target="<= 1 + elapsed / wake_timeout",
                         size=f"{s['placements']:,} single + 1 x 100-row INSERT")
        for _ in range(self.runs):
            load_market(self.c, tickers=s["tickers"], users=s["users"])
            # Nothing listens on port 9: every wake is lost, as when the function is down.
            self.configure_webhook("http://127.0.0.1:9/", "sb_secret_bench")
            vacuum(self.c)
            placers = [Placer(self.c) for _ in range(4)]
            users = placers[0].users
            tickers = placers[0].tickers
            per = s["placements"] // 4

            def run(i: int) -> None:
                for n in range(per):
                    k = i * per + n
                    # Each user gets at most 5 pending orders (the placement limit).
                    placers[i].place(users[k % len(users)], tickers[k % len(tickers)])

            try:
                elapsed = run_in_threads(run, 4)
            finally:
                for p in placers:
                    p.close()
            placed = per * 4
            f.runs.append(placed / elapsed)
            # One multi-row INSERT statement (as the service role might backfill).
            with admin(self.c) as conn:
                conn.execute(f"""
                    insert into public.queue (user_id, ticker, order_type, amount_usdp)
                    select {user_sql('1 + i % 10')}, {ticker_sql('1')}, 'buy', 1
                    from generate_series(1, 100) as i
                """)
                requests = conn.execute("select count(*) from net.http_request_queue").fetchone()[0]
                timeout = conn.execute("select extract(epoch from wake_timeout)::float"
                                       " from pauv.process_queue_wake_state").fetchone()[0]
            statements = placed + 1
            bound = 1 + elapsed / timeout
            hooks.check = lambda v, bound=bound: v <= bound
            hooks.runs.append(requests)
            hooks.note = (f"{requests:,} pg_net requests for {statements:,} INSERT statements "
                          f"({placed + 100:,} rows) in {elapsed:.1f} s; bound {bound:.1f}")
            self.log(f"{placed} placements in {elapsed:.2f} s ({placed / elapsed:,.0f}/s),"
                     f" max latency {max(max(p.latencies) for p in placers) * 1000:.1f} ms;"
                     f" {requests} requests / {statements} statements")
            drain_all(self.c)
            self.log(audit_clean(self.c))

    def scenario_9(self) -> None:
        """Issue 11 item 3: a sustained placement rate with the process-queue function
        running behind the gateway stand-in and a running pg_net worker. Wakes are
        coalesced: invocations follow the work, not the INSERT rate."""
        s = self.s
        rate, seconds = s["wake_rate"], s["wake_seconds"]
        size = f"{rate:,}/s paced for {seconds} s, {s['users']:,} users"
        achieved = self.fig("9a", label="placements/s achieved (paced)", unit="placements/s",
                            target=f">= {rate * 0.9:,.0f}", check=lambda v: v >= rate * 0.9,
                            size=size)
        calls = self.fig("9b", label="function invocations per second", unit="1/s",
                         target="<= 1", check=lambda v: v <= 1, size=size)
        p50 = self.fig("9c", label="placement to execution, p50", unit="ms",
                       target="<= 1,000", check=lambda v: v <= 1000, size=size)
        p99 = self.fig("9d", label="placement to execution, p99", unit="ms",
                       target="<= 5,000", check=lambda v: v <= 5000, size=size)
        threads = max(1, min(8, rate // 100))
        deno_env = dict(os.environ) | {"NO_COLOR": "1"}
        deno_env.setdefault("DENO_DIR", str(ROOT / "node_modules" / ".cache" / "deno"))
        api = SupabaseApiStandin(self.c.dsn).start()
        try:
            with serve_function(api, "process-queue", ROOT / "node_modules" / ".bin" / "deno",
                                ROOT / "supabase" / "functions" / "process-queue", deno_env,
                                verify_jwt=False):
                for _ in range(self.runs):
                    load_market(self.c, tickers=s["tickers"], users=s["users"])
                    self.configure_webhook(api.url, api.secret_keys["default"])
                    vacuum(self.c)
                    self.paced_placements(rate, seconds, threads, achieved, calls, p50, p99)
        finally:
            api.stop()

    def paced_placements(self, rate: int, seconds: int, threads: int, achieved: Figure,
                         calls: Figure, p50: Figure, p99: Figure) -> None:
        placers = [Placer(self.c) for _ in range(threads)]
        users, tickers = placers[0].users, placers[0].tickers
        per = rate * seconds // threads
        interval = threads / rate
        with PgNetWorker(self.c.dsn("supabase_admin")) as worker:
            start = time.monotonic() + 0.2

            def run(i: int) -> None:
                for n in range(per):
                    due = start + n * interval + i * interval / threads
                    if (wait := due - time.monotonic()) > 0:
                        time.sleep(wait)
                    k = n * threads + i
                    placers[i].place(users[k % len(users)], tickers[k % len(tickers)], "1")

            try:
                elapsed = run_in_threads(run, threads) - 0.2
            finally:
                for p in placers:
                    p.close()
            deadline = time.monotonic() + 60
            while pending(self.c) and time.monotonic() < deadline:
                time.sleep(0.05)
            left = pending(self.c)
        invocations = len(worker.sent)  # every request sent and answered by now
        if left:
            raise AssertionError(f"{left} orders still pending 60 s after the load")
        with self.c.connect(autocommit=True) as conn:
            q50, q99, done, failed = conn.execute("""
                select
                    percentile_cont(0.5) within group (order by processed_at - date),
                    percentile_cont(0.99) within group (order by processed_at - date),
                    count(*), count(*) filter (where status = 'failed')
                from public.queue where status in ('completed', 'failed')
            """).fetchone()
        placed = done
        achieved.runs.append(placed / elapsed)
        calls.runs.append(invocations / elapsed)
        p50.runs.append(q50.total_seconds() * 1000)
        p99.runs.append(q99.total_seconds() * 1000)
        statuses = sorted({st for _, _, st in worker.sent}, key=str)
        calls.note = (f"{invocations} invocations (HTTP {statuses}) for {placed:,} placements "
                      f"in {elapsed:.1f} s; {failed} failed orders")
        self.log(f"{placed} placed in {elapsed:.1f} s, {invocations} invocations, "
                 f"p50 {q50.total_seconds() * 1000:.0f} ms, p99 {q99.total_seconds() * 1000:.0f}"
                 f" ms; {audit_clean(self.c)}")

    # --- scheduled jobs (issue 4): skipped with a note when this build lacks them --------

    def has_function(self, fn: str) -> bool:
        with self.c.connect(autocommit=True) as conn:
            return conn.execute("select to_regproc(%s) is not null", (fn,)).fetchone()[0]

    def jobs_missing(self, keys: list[str], fn: str) -> bool:
        if self.has_function(fn):
            return False
        for key in keys:
            self.fig(key, label=f"{fn}: not in this build", unit="", size="-")
        return True

    def load_trades(self, *, issuers: int, trades: int, since: str, until: str) -> None:
        """`trades` executed trades (transactions + their price ticks) spread evenly over
        the issuers and over [since, until): what the jobs read. Bulk-loaded as history."""
        s = self.s
        load_market(self.c, tickers=issuers, users=s["users"])
        with admin(self.c) as conn:
            conn.execute(f"""
                set session_replication_role = replica;
                insert into public.transactions (
                    user_id, amount_usdp, ticker, order_type, avg_price_paid, pv_traded,
                    start_price, end_price, date
                )
                select
                    {user_sql(f'1 + i % {s["users"]}')}, 10, {ticker_sql(f'1 + i % {issuers}')},
                    case when i % 5 = 0 then 'sell' else 'buy' end, 1.5, 6.5,
                    1 + 0.00001 * (i / {issuers}), 1 + 0.00001 * (i / {issuers} + 1),
                    {since} + ({until} - {since}) * (i::float8 / {trades})
                from generate_series(0, {trades} - 1) as i
                order by i;
                insert into public.price_history (ticker, price, supply, timestamp, transaction_id)
                select x.ticker, x.end_price, (x.end_price - 1) * 1000, x.date, x.id
                from public.transactions as x order by x.id;
                set session_replication_role = origin;
            """)
        vacuum(self.c)

    def timed_sql(self, sql: str) -> float:
        with processor(self.c) as conn:
            started = time.perf_counter()
            conn.execute(sql)
            return time.perf_counter() - started

    def scenario_5(self) -> None:
        if self.jobs_missing(["5a", "5b", "5c"], "public.refresh_issuer_stats_cache"):
            return
        s = self.s
        now = "date_trunc('hour', now())"
        small = self.fig("5a", label="refresh_issuer_stats_cache()", unit="s", target="<= 1",
                         check=lambda v: v <= 1,
                         size=f"{s['stats_issuers']:,} issuers / {s['stats_trades']:,} trades in 7 d")
        big = self.fig("5b", label="refresh_issuer_stats_cache()", unit="s",
                       size=f"{s['stats_issuers_big']:,} issuers / {s['stats_trades']:,} trades")
        growth = self.fig("5c", label="time per issuer, large / small", unit="x",
                          target="<= 1 (linear)", check=lambda v: v <= 1.0,
                          size=f"{s['stats_issuers_big']:,} vs {s['stats_issuers']:,} issuers")
        for fig, issuers in ((small, s["stats_issuers"]), (big, s["stats_issuers_big"])):
            self.load_trades(issuers=issuers, trades=s["stats_trades"],
                             since=f"{now} - interval '7 days'", until=now)
            for _ in range(self.runs):
                fig.runs.append(self.timed_sql(
                    f"select public.refresh_issuer_stats_cache({now} + interval '1 minute')"))
            self.log(f"stats cache, {issuers} issuers: {fig.runs}")
        ratio = s["stats_issuers_big"] / s["stats_issuers"]
        growth.runs = [b / a / ratio for a, b in zip(small.runs, big.runs)]

    def scenario_6(self) -> None:
        if self.jobs_missing(["6a", "6b"], "public.snapshot_hourly_prices"):
            return
        s = self.s
        hour = "date_trunc('hour', now())"
        snap = f"select public.snapshot_hourly_prices(interval '7 days', {hour} + interval '5 minutes')"
        hourly = self.fig("6a", label="snapshot_hourly_prices(), one hour", unit="s",
                          target="<= 0.5", check=lambda v: v <= 0.5,
                          size=f"{s['snap_issuers']:,} issuers / {s['snap_trades']:,} trades in the hour")
        catchup = self.fig("6b", label=f"snapshot, catching up {s['catchup_days']} missed days",
                           unit="s", target="<= 10", check=lambda v: v <= 10,
                           size=f"{s['snap_issuers']:,} issuers / {s['stats_trades']:,} trades "
                                f"over {s['catchup_days']} d")
        self.load_trades(issuers=s["snap_issuers"], trades=s["snap_trades"],
                         since=f"{hour} - interval '1 hour'", until=hour)
        for _ in range(self.runs):
            with admin(self.c) as conn:
                conn.execute("truncate public.price_candles_hourly")
            hourly.runs.append(self.timed_sql(snap))
        self.load_trades(issuers=s["snap_issuers"], trades=s["stats_trades"],
                         since=f"{hour} - interval '{s['catchup_days']} days'", until=hour)
        for _ in range(self.runs):
            with admin(self.c) as conn:
                conn.execute("truncate public.price_candles_hourly")
            catchup.runs.append(self.timed_sql(snap))
            with admin(self.c) as conn:
                candles = conn.execute("select count(*) from public.price_candles_hourly").fetchone()[0]
            catchup.note = f"{candles:,} candles written by the catch-up"
        self.log(f"snapshot: hourly {hourly.runs}, catch-up {catchup.runs}")

    def scenario_7(self) -> None:
        if self.jobs_missing(["7a", "7b"], "public.cleanup_old_queue_entries"):
            return
        s = self.s
        rate = self.fig("7a", label="cleanup_old_queue_entries()", unit="rows/s",
                        target=">= 100,000", check=lambda v: v >= 100_000,
                        size=f"{s['cleanup']:,} finished rows, batches of 10,000")
        wait = self.fig("7b", label="max place_order latency during cleanup", unit="ms",
                        target="<= 50", check=lambda v: v <= 50, size="1 placing connection")
        for _ in range(self.runs):
            load_market(self.c, tickers=s["tickers"], users=s["users"])
            load_finished(self.c, rows=s["cleanup"], tickers=s["tickers"], users=s["users"])
            vacuum(self.c)
            placer = Placer(self.c)
            # Round-robin over users: at most 5 pending each at this pace.
            placer.start_round_robin()
            time.sleep(0.5)  # the placing loop is warm before the cleanup starts
            placer.latencies.clear()
            deleted = 0
            with processor(self.c) as conn:
                started = time.perf_counter()
                while True:
                    r = conn.execute("select public.cleanup_old_queue_entries("
                                     "interval '7 days', 10000)").fetchone()[0]
                    deleted += r["deleted"]
                    if not r["has_more"]:
                        break
                elapsed = time.perf_counter() - started
            placer.stop_round_robin()
            if deleted != s["cleanup"]:
                raise AssertionError(f"cleanup deleted {deleted}, expected {s['cleanup']}")
            rate.runs.append(deleted / elapsed)
            lat = sorted(placer.latencies)
            wait.runs.append(lat[-1] * 1000)
            wait.note = (f"{len(lat):,} placements during the cleanup, median "
                         f"{lat[len(lat) // 2] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
            self.log(f"cleanup {deleted} rows in {elapsed:.2f} s; {wait.note}; {audit_clean(self.c)}")

    def scenario_10(self) -> None:
        """Adoption of a legacy Pauv database (docs/adoption.md): `make adopt` onto a
        database fabricated in the legacy schema's shape, with a poller recording how long
        each market table is held in ACCESS EXCLUSIVE mode. Own cluster: it starts legacy."""
        s = self.s
        size = f"{s['adopt_users']:,} users, {s['adopt_trades']:,} trades, {s['adopt_ticks']:,} ticks"
        total = self.fig("10a", label="adoption (make adopt), total", unit="s", size=size)
        lock = self.fig("10b", label="adoption, longest lock on a market table", unit="s",
                        size=size)
        for _ in range(self.runs):
            with throwaway_cluster(prefix="pauv-bench-adopt-", push=False) as cluster:
                apply_legacy_schema(cluster)
                with cluster.connect("supabase_admin") as conn:
                    fabricate_legacy_market_bulk(conn, users=s["adopt_users"],
                                                 trades=s["adopt_trades"], ticks=s["adopt_ticks"],
                                                 issuers=max(10, s["adopt_users"] // 100))
                with cluster.connect("supabase_admin", autocommit=True) as conn:
                    conn.execute("vacuum analyze")
                held, stop = {}, threading.Event()

                def poll() -> None:
                    with cluster.connect("supabase_admin", autocommit=True) as watcher:
                        while not stop.is_set():
                            now = time.perf_counter()
                            for pid, rel in watcher.execute(LOCK_POLL).fetchall():
                                first, _ = held.get((pid, rel), (now, now))
                                held[(pid, rel)] = (first, now)
                            time.sleep(0.01)

                thread = threading.Thread(target=poll)
                thread.start()
                started = time.perf_counter()
                result = subprocess.run(["make", "--no-print-directory", "adopt",
                                         f"DB_URL={cluster.url()}"], cwd=ROOT,
                                        capture_output=True, text=True, check=False)
                elapsed = time.perf_counter() - started
                stop.set()
                thread.join()
                if result.returncode != 0:
                    raise AssertionError(result.stdout + result.stderr)
                with cluster.connect() as conn:
                    verdict = conn.execute("select count(*) from public.audit_market_invariants()"
                                           ).fetchone()[0]
                if verdict:
                    raise AssertionError(f"audit after adoption: {verdict} violations")
                longest_rel, (first, last) = max(held.items(), key=lambda kv: kv[1][1] - kv[1][0])
                total.runs.append(elapsed)
                lock.runs.append(last - first)
                lock.note = f"longest: {longest_rel[1]} (polled every 10 ms)"
                self.log(f"adoption {elapsed:.1f} s, longest lock {last - first:.2f} s on"
                         f" {longest_rel[1]}; audit clean")


SCENARIOS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help="comma-separated scenario numbers (default: all)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a server setting for this run (repeatable), after"
                         " scripts/server-options.sh's")
    args = ap.parse_args(argv)
    for setting in args.set:
        if "=" not in setting or " " in setting:
            ap.error(f"--set takes NAME=VALUE without spaces, got {setting!r}")
    wanted = [x.strip() for x in args.only.split(",") if x.strip()]
    scale = SCALES[args.scale]

    print(f"Pauv benchmark: scale {args.scale}, {args.runs} run(s) per scenario, median shown")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print("server: fsync=off, synchronous_commit=off, full_page_writes=off "
          "(scripts/server-options.sh): CPU-bound figures")
    started = time.perf_counter()
    extra = " ".join(f"-c {setting}" for setting in args.set)
    with throwaway_cluster(prefix="pauv-bench-", extra_options=extra) as cluster:
        with cluster.connect(autocommit=True) as conn:
            print(conn.execute("select version()").fetchone()[0].split(",")[0])
            buffers = conn.execute("show shared_buffers").fetchone()[0]
            print(f"shared_buffers {buffers}"
                  + (f" (--set {' '.join(args.set)})" if args.set else ""))
        bench = Bench(cluster, scale, args.runs, not args.quiet)
        for key in wanted:
            if not args.quiet:
                print(f"scenario {key} ...", flush=True)
            getattr(bench, f"scenario_{key}")()
        print()
        print_table(list(bench.figures.values()))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
