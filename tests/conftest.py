"""Test harness: one throwaway PostgreSQL per pytest session, prepared like a Supabase
project and migrated by the real Supabase CLI; per-test isolation by rolled-back
transaction (`db`) or by truncation after committed work (`market`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from harness import MIGRATIONS, ROOT, Cluster, throwaway_cluster

from legacy import apply_legacy_schema
from legacy.market import build_legacy_market
from postgrest_standin import (
    FunctionStartError,
    SupabaseApiStandin,
    new_api_key,
    project_key,
    send_http_request,
    serve_function,
)

__all__ = ["MIGRATIONS", "ROOT", "Cluster"]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    try:
        with throwaway_cluster() as c:
            yield c
    except subprocess.CalledProcessError as e:
        pytest.exit(f"preparing the test database failed:\n{e.stdout}\n{e.stderr}", 3)


@pytest.fixture
def db(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[psycopg.Connection]:
    """A connection as 'postgres' inside one transaction that is rolled back. Whatever
    the test traded, DESIGN.md's invariants must hold when it ends (checked before the
    rollback), unless it is marked `breaks_invariants`."""
    conn = cluster.connect()
    try:
        yield conn
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            _assert_invariants_hold(conn, request)
    finally:
        conn.rollback()
        conn.close()


def _assert_invariants_hold(conn: psycopg.Connection, request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("breaks_invariants"):
        return
    conn.execute("reset role")
    violations = audit(conn)
    assert violations == [], f"the test left the market inconsistent: {violations}"


def _truncate_market(cluster: Cluster) -> None:
    with cluster.connect("supabase_admin", autocommit=True) as conn:
        tables = conn.execute(
            "select string_agg(format('%I.%I', schemaname, tablename), ', ')"
            " from pg_tables where schemaname in ('public', 'pauv')"
            " or (schemaname, tablename) = ('realtime', 'messages')"
        ).fetchone()[0]
        conn.execute(f"truncate {tables}, auth.users restart identity cascade")


@pytest.fixture
def market(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """For tests that commit (several connections, concurrency): the market tables are
    emptied before and after the test, and the invariants must hold when it ends (as
    for `db`). Open connections with `market.connect(...)`."""
    _truncate_market(cluster)
    try:
        yield cluster
        with cluster.connect() as conn:
            _assert_invariants_hold(conn, request)
    finally:
        _truncate_market(cluster)


# --- acting as Supabase API roles ------------------------------------------------------


def act_as(conn: psycopg.Connection, role: str, user_id: uuid.UUID | str | None = None) -> None:
    """Become an API role for the rest of the transaction, as PostgREST does: `role`
    plus `request.jwt.claims`, both transaction-local."""
    claims: dict[str, str] = {"role": role}
    if user_id is not None:
        claims["sub"] = str(user_id)
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        (role, json.dumps(claims)),
    )


def act_as_owner(conn: psycopg.Connection) -> None:
    """Back to the session's own role ('postgres') within the transaction. In an aborted
    transaction there is nothing to do: rolling back ends the role switch too."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        return
    conn.execute("reset role")
    conn.execute("select set_config('request.jwt.claims', '', true)")


@contextlib.contextmanager
def signed_in(conn: psycopg.Connection, user_id: uuid.UUID | str) -> Iterator[psycopg.Connection]:
    act_as(conn, "authenticated", user_id)
    try:
        yield conn
    finally:
        act_as_owner(conn)


@contextlib.contextmanager
def as_role(conn: psycopg.Connection, role: str) -> Iterator[psycopg.Connection]:
    act_as(conn, role)
    try:
        yield conn
    finally:
        act_as_owner(conn)


# --- bad order input ----------------------------------------------------------------------

# What every order path (place_order, the app's INSERT into queue, quote_order) refuses in
# an order's side and amount, with place_order's SQLSTATE and message:
# (order_type, amount, sqlstate, message). Each path's battery adds its own cases.
BAD_ORDER_AMOUNTS = [
    ("buy", "NaN", "22023", "finite"),
    ("buy", "Infinity", "22023", "finite"),
    ("buy", "-Infinity", "22023", "finite"),
    ("buy", "-5", "22023", "between 0.01 and 1000000"),
    ("buy", "0.009999", "22023", "between 0.01 and 1000000"),
    ("buy", "1000000.000001", "22023", "between 0.01 and 1000000"),
    ("buy", "10.0000001", "22023", "at most 6 decimals"),
    ("sell", "1.000000001", "22023", "at most 8 decimals"),
    ("hold", "10", "22023", "order_type must be"),
]


# --- factories ---------------------------------------------------------------------------


def new_user(conn: psycopg.Connection, balance: Decimal | int | str = 0,
             username: str | None = None) -> uuid.UUID:
    """Sign a user up (auth.users insert, as on Supabase) and deposit `balance` USDP."""
    user_id = uuid.uuid4()
    meta = json.dumps({"username": username} if username else {})
    conn.execute(
        "insert into auth.users (id, email, raw_user_meta_data) values (%s, %s, %s)",
        (user_id, f"{user_id}@example.test", meta),
    )
    if Decimal(balance) > 0:
        conn.execute("select public.deposit_usdp(%s, %s)", (user_id, Decimal(balance)))
    return user_id


def new_issuer(conn: psycopg.Connection, ticker: str, base_price: Decimal | str | None = None,
               price_step: Decimal | str | None = None, name: str | None = None) -> str:
    """List an issuer the way the app does: one insert into each issuer table."""
    conn.execute("insert into public.issuer_details (ticker, name) values (%s, %s)",
                 (ticker, name or f"Issuer {ticker}"))
    cols, vals = ["ticker"], [ticker]
    if base_price is not None:
        cols.append("base_price")
        vals.append(Decimal(base_price))
    if price_step is not None:
        cols.append("price_step")
        vals.append(Decimal(price_step))
    conn.execute(
        f"insert into public.issuer_trading ({', '.join(cols)})"
        f" values ({', '.join(['%s'] * len(vals))})",
        vals,
    )
    return ticker


def money_state(conn: psycopg.Connection) -> tuple:
    """Where the money and tokens are: balances, each issuer's supply and pool, holdings,
    and the number of trades. A refused order must leave it unchanged."""
    return conn.execute(
        "select (select coalesce(sum(usdp_balance), 0) from public.users),"
        " (select array_agg((ticker, current_supply, total_usdp) order by ticker)::text"
        "  from public.issuer_trading),"
        " (select array_agg((user_id, ticker, pv_amount) order by user_id, ticker)::text"
        "  from public.portfolio),"
        " (select count(*) from public.transactions)"
    ).fetchone()


def audit(conn: psycopg.Connection) -> list[tuple]:
    """Violated invariants of DESIGN.md, as the operators' audit reports them."""
    return conn.execute("select * from public.audit_market_invariants()").fetchall()


def wait_until_blocked(observer: psycopg.Connection, pid: int, what: str) -> None:
    """Wait (up to 5 s) until backend `pid` waits for a lock; fail saying `what` it should be
    waiting for otherwise."""
    for _ in range(250):
        waiting = observer.execute("select wait_event_type from pg_stat_activity where pid = %s",
                                   (pid,)).fetchone()
        if waiting == ("Lock",):
            return
        time.sleep(0.02)
    raise AssertionError(what)


def error_after_waiting(market: Cluster, request: pytest.FixtureRequest, first: tuple,
                        second: tuple, what: str) -> psycopg.Error | None:
    """Runs `first` (sql, args) uncommitted in one session, then `second` in another, which
    must wait for it (fails saying `what` it should be waiting for otherwise), then commits
    the first: returns the error `second` ended with (lock_timeout 10 s), or None."""
    holder = market.connect()
    request.addfinalizer(holder.close)
    holder.execute(*first)
    waiter = market.connect(autocommit=True)
    request.addfinalizer(waiter.close)
    waiter.execute("set lock_timeout = '10s'")
    outcome: dict = {}

    def run() -> None:
        try:
            waiter.execute(*second)
            outcome["error"] = None
        except psycopg.Error as e:
            outcome["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    with market.connect(autocommit=True) as observer:
        wait_until_blocked(observer, waiter.info.backend_pid, what)
    holder.commit()
    worker.join(10)
    return outcome["error"]


def drain(conn: psycopg.Connection, now: str | None = None) -> dict:
    """Process every pending order, looping as callers do."""
    totals = {"total_processed": 0, "successful": 0, "failed": 0}
    while True:
        result = conn.execute(
            "select public.process_all_pending_orders(1000, 30, coalesce(%s::timestamptz, now()))",
            (now,),
        ).fetchone()[0]
        for key in totals:
            totals[key] += result[key]
        if not result["has_more"] or result["total_processed"] == 0:
            return totals | {"has_more": result["has_more"]}

# --- Supabase HTTP API, edge function and pg_net worker stand-ins -------------------------
# Hosted services that cannot run here, faithful at the interface we use: the project's
# API (PostgREST RPC + functions gateway, tests/postgrest_standin.py), the process-queue
# function run by the real Deno, and pg_net's worker delivering queued requests.

DENO = ROOT / "node_modules" / ".bin" / "deno"
FUNCTIONS = ROOT / "supabase" / "functions"


def deno_env() -> dict[str, str]:
    """Deno's environment: its cache in node_modules (ignored, shared by runs) unless
    DENO_DIR says otherwise, so it works as root and offline after the first fetch."""
    env = dict(os.environ)
    env.setdefault("DENO_DIR", str(ROOT / "node_modules" / ".cache" / "deno"))
    env["NO_COLOR"] = "1"
    return env


@pytest.fixture(scope="session")
def api_keys(supabase_api: SupabaseApiStandin) -> dict[str, str]:
    """The project's keys: the legacy anon and service_role JWTs (signed with the test
    secret), the default publishable and secret keys, and 'webhook', a secret key of its
    own for the queue webhook (named process_queue_webhook, as docs/webhook.md says)."""
    return {"anon": project_key("anon"), "service_role": project_key("service_role"),
            "publishable": supabase_api.publishable_keys["default"],
            "secret": supabase_api.secret_keys["default"],
            "webhook": supabase_api.secret_keys["process_queue_webhook"]}


@pytest.fixture(scope="session")
def supabase_api(cluster: Cluster) -> Iterator[SupabaseApiStandin]:
    """The project URL: /rest/v1/rpc/<fn> on the throwaway database, /functions/v1/<name>."""
    api = SupabaseApiStandin(cluster.dsn)
    api.secret_keys["process_queue_webhook"] = new_api_key("secret")
    api.start()
    try:
        yield api
    finally:
        api.stop()


def function_config(name: str) -> dict:
    """The [functions.<name>] table of supabase/config.toml (verify_jwt, entrypoint...)."""
    return tomllib.loads((ROOT / "supabase" / "config.toml").read_text())["functions"][name]


@contextlib.contextmanager
def serve_process_queue(api: SupabaseApiStandin, extra_env: dict[str, str] | None = None
                        ) -> Iterator[str]:
    """supabase/functions/process-queue served by the real Deno behind the gateway stand-in
    (postgrest_standin.serve_function), with config.toml's verify_jwt. Yields its URL."""
    try:
        with serve_function(api, "process-queue", DENO, FUNCTIONS / "process-queue",
                            deno_env() | (extra_env or {}),
                            verify_jwt=function_config("process-queue")["verify_jwt"]) as url:
            yield url
    except FunctionStartError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def process_queue_function(supabase_api: SupabaseApiStandin,
                           api_keys: dict[str, str]) -> Iterator[str]:
    """The process-queue function, running for the whole session (see serve_process_queue)."""
    with serve_process_queue(supabase_api) as url:
        yield url


def deliver_http_requests(cluster: Cluster) -> list[dict]:
    """pg_net's background worker, for the stand-in: sends every committed request of
    net.http_request_queue, removes it and stores the answer in net._http_response."""
    delivered = []
    with cluster.connect("supabase_admin", autocommit=True) as conn:
        requests = conn.execute(
            "delete from net.http_request_queue"
            " returning id, method, url, headers, body, timeout_milliseconds"
        ).fetchall()
        for request_id, method, url, headers, body, timeout_ms in sorted(requests):
            answer = send_http_request(method, url, headers,
                                       bytes(body) if body is not None else None, timeout_ms)
            conn.execute(
                "insert into net._http_response"
                " (id, status_code, content_type, headers, content, timed_out, error_msg)"
                " values (%s, %s, %s, %s, %s, %s, %s)",
                (request_id, answer["status"], answer["headers"].get("Content-Type"),
                 json.dumps(answer["headers"]), answer["content"], answer["timed_out"],
                 answer["error"]),
            )
            delivered.append({"id": request_id, "status": answer["status"],
                              "content": answer["content"], "error": answer["error"]})
    return delivered


# --- a legacy Pauv database, adopted (tests/test_adoption.py, tests/test_app_contract.py) ---

# The app's own tables: adoption must leave them and their rows exactly as they were.
NON_MARKET_TABLES = (
    "public.tags", "public.issuer_links", "public.issuer_requests", "public.issuer_invites",
    "public.launch_notifications", "public.security_audit", "public.waitlist",
    "public.rate_limit_log", "public.deposits", "public.payment_transactions",
    "storage.buckets", "storage.objects",
)


def make_adopt(cluster: Cluster) -> subprocess.CompletedProcess:
    """What an operator runs: `make adopt DB_URL=<url>`."""
    return subprocess.run(["make", "--no-print-directory", "adopt", f"DB_URL={cluster.url()}"],
                          cwd=ROOT, capture_output=True, text=True, check=False)


def rows(conn: psycopg.Connection, sql: str, *args) -> list[tuple]:
    return conn.execute(sql, args or None).fetchall()


def table_digest(conn: psycopg.Connection, table: str) -> str:
    return conn.execute(
        f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {table} as t"
    ).fetchone()[0]


@pytest.fixture(scope="session")
def adopted_legacy() -> Iterator[dict]:
    """One legacy market made through the legacy schema's own rules (tests/legacy),
    snapshotted, then adopted by `make adopt`."""
    with throwaway_cluster(prefix="pauv-adopt-", push=False) as cluster:
        apply_legacy_schema(cluster)
        market = build_legacy_market(cluster, users=120, orders=1500, pending_left=150,
                                     concurrent_orders=300)
        with cluster.connect("supabase_admin") as conn:
            before = {
                "users": {r[0]: r[1:] for r in rows(conn, "select user_id, usdp_balance,"
                          " username, id, terms_accepted_at from public.users")},
                "holdings": {(r[0], r[1]): r[2:] for r in rows(conn, "select user_id, ticker,"
                             " pv_amount, avg_cost_basis, id from public.portfolio")},
                "issuers": {r[0]: r[1:] for r in rows(conn, "select ticker, base_price,"
                            " price_step, current_supply, total_usdp, id from public.issuer_trading")},
                "details": rows(conn, "select id, ticker, name, bio, headline, tag, photo,"
                                " user_id, is_hidden from public.issuer_details order by id"),
                "orders": {r[0]: r[1:] for r in rows(conn, "select id, user_id, ticker,"
                           " order_type::text, status::text, amount_usdp, amount_pv, date, created_at"
                           " from public.queue")},
                "trades": {r[0]: r[1:] for r in rows(conn, "select id, queue_id, user_id, ticker,"
                           " amount_usdp, pv_traded, date from public.transactions")},
                "ticks": rows(conn, "select id, ticker, timestamp from public.price_history"
                              " order by id"),
                "non_market": {t: table_digest(conn, t) for t in NON_MARKET_TABLES},
                "auth_users": conn.execute("select count(*) from auth.users").fetchone()[0],
            }
        result = make_adopt(cluster)
        yield {"cluster": cluster, "before": before, "market": market, "adopt": result}


