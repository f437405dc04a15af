"""The queue webhook (coalesced wakes through pg_net, the secret key from Vault) and the
process-queue edge function (secret keys only, through @supabase/server): its Deno tests,
the trigger, the drain RPCs and their races, and the whole path end to end:
INSERT -> webhook -> pg_net -> gateway -> function under Deno -> RPC -> orders completed."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from conftest import (
    DENO,
    FUNCTIONS,
    MIGRATIONS,
    Cluster,
    act_as,
    act_as_owner,
    deliver_http_requests,
    deno_env,
    new_issuer,
    new_user,
    serve_process_queue,
)
from postgrest_standin import SupabaseApiStandin, make_jwt, new_api_key

FUNCTION_DIR = FUNCTIONS / "process-queue"
WEBHOOK_TIMEOUT_MS = 30000
FUNCTION_PATH = "/functions/v1/process-queue"


# --- helpers -------------------------------------------------------------------------------


def configure_vault(conn: psycopg.Connection, project_url: str | None,
                    secret_key: str | None, legacy_key: str | None = None) -> None:
    """The operator's setup step: the project URL and the webhook's key(s) into Vault."""
    for value, name in ((project_url, "project_url"), (secret_key, "process_queue_secret_key"),
                        (legacy_key, "process_queue_invoke_key")):
        if value is not None:
            conn.execute("select vault.create_secret(%s, %s)", (value, name))


def set_vault_secret(conn: psycopg.Connection, name: str, value: str) -> None:
    conn.execute("select vault.update_secret((select id from vault.secrets where name = %s), %s)",
                 (name, value))


def last_request_id(conn: psycopg.Connection) -> int:
    return conn.execute("select coalesce(max(id), 0) from net.http_request_queue").fetchone()[0]


def requests_since(conn: psycopg.Connection, after_id: int) -> list[dict]:
    rows = conn.execute(
        "select id, method, url, headers, convert_from(body, 'utf8')::jsonb,"
        " timeout_milliseconds from net.http_request_queue where id > %s order by id",
        (after_id,),
    ).fetchall()
    return [dict(zip(("id", "method", "url", "headers", "body", "timeout_milliseconds"), r))
            for r in rows]


def insert_buys(conn: psycopg.Connection, user_ids: list, ticker: str, amount: str,
                per_user: int) -> list[int]:
    """One INSERT statement of per_user buys for each user; returns the new ids in order."""
    rows = conn.execute(
        "insert into public.queue (user_id, ticker, order_type, amount_usdp)"
        " select u.user_id, %s, 'buy', %s::numeric"
        " from unnest(%s::uuid[]) with ordinality as u (user_id, n)"
        " cross join generate_series(1, %s) as g (k)"
        " order by g.k, u.n returning id",
        (ticker, amount, user_ids, per_user),
    ).fetchall()
    return sorted(r[0] for r in rows)


def wake_state(conn: psycopg.Connection) -> dict:
    row = conn.execute(
        "select wake_requested_at is not null, drain_id from pauv.process_queue_wake_state"
    ).fetchone()
    return {"wake_queued": row[0], "drain_id": row[1]}


def reset_wake_state(conn: psycopg.Connection) -> None:
    """No wake queued, no drain running (the row is put back if a test truncated it)."""
    conn.execute("insert into pauv.process_queue_wake_state default values on conflict (id)"
                 " do update set wake_requested_at = null, drain_id = null, drain_seen_at = null")


def age_wake_state(conn: psycopg.Connection) -> None:
    """As if the queued wake and the running drain were older than their timeouts."""
    conn.execute("update pauv.process_queue_wake_state set"
                 " wake_requested_at = wake_requested_at - wake_timeout - interval '1 second',"
                 " drain_seen_at = drain_seen_at - drain_timeout - interval '1 second'")


def begin_drain(conn: psycopg.Connection) -> str:
    act_as(conn, "service_role")
    drain_id = conn.execute("select public.begin_process_queue_drain()").fetchone()[0]
    act_as_owner(conn)
    return str(drain_id)


def end_drain(conn: psycopg.Connection, drain_id: str, stopped_by: str) -> bool:
    act_as(conn, "service_role")
    goes_on = conn.execute("select public.end_process_queue_drain(%s, %s)",
                           (drain_id, stopped_by)).fetchone()[0]
    act_as_owner(conn)
    return goes_on


@pytest.fixture
def funded_market(db: psycopg.Connection) -> tuple[psycopg.Connection, list, str]:
    """Inside the rolled-back transaction: two funded users, an issuer, no wake queued."""
    reset_wake_state(db)
    users = [new_user(db, balance=1000) for _ in range(2)]
    return db, users, new_issuer(db, "WHK")


# --- the edge function's own tests under Deno -------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["check", "--frozen", "index.ts", "index_test.ts"], ["lint"], ["fmt", "--check"]],
    ids=["check", "lint", "fmt"],
)
def test_function_type_checks_lints_and_is_formatted(command: list[str]) -> None:
    proc = subprocess.run(
        [str(DENO), *command],
        cwd=FUNCTION_DIR, env=deno_env(), capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_function_deno_tests_pass() -> None:
    text = (FUNCTION_DIR / "index_test.ts").read_text()
    refused = re.search(r"^const REFUSED.*?^\];", text, re.MULTILINE | re.DOTALL).group(0)
    refused_cases = len(re.findall(r'"[A-Z_]+"', refused))  # one error code per case
    expected = len(re.findall(r"^Deno\.test\(", text, re.MULTILINE)) + refused_cases
    proc = subprocess.run(
        [str(DENO), "test", "--frozen", "--no-prompt", "index_test.ts"],
        cwd=FUNCTION_DIR, env=deno_env(), capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = re.search(r"ok \| (\d+) passed \| (\d+) failed", proc.stdout)
    assert summary, proc.stdout
    assert (int(summary.group(1)), int(summary.group(2))) == (expected, 0)
    assert (refused_cases, expected) == (8, 22)


def test_the_function_uses_supabase_server_and_skips_the_gateway_jwt_check() -> None:
    """Today's shape (CLI 2.117's template): verify_jwt off, @supabase/server checks keys."""
    config = (MIGRATIONS.parent / "config.toml").read_text()
    assert re.search(r"\[functions\.process-queue\]\n(?:.*\n)*?verify_jwt = false\n", config)
    imports = json.loads((FUNCTION_DIR / "deno.json").read_text())["imports"]
    assert imports["@supabase/server/core"] == "npm:@supabase/server@1.8.1/core"
    source = (FUNCTION_DIR / "index.ts").read_text()
    assert 'export const AUTH_MODE = "secret:*";' in source
    assert "SUPABASE_SERVICE_ROLE_KEY" not in source


# --- the trigger -----------------------------------------------------------------------------


def test_the_wake_carries_the_secret_key_in_apikey(funded_market) -> None:
    db, users, ticker = funded_market
    configure_vault(db, "https://abcdefgh.supabase.co/", "sb_secret_webhook123")
    before = last_request_id(db)

    act_as(db, "service_role")
    three = insert_buys(db, users[:1], ticker, "10", per_user=3)
    act_as_owner(db)

    requests = requests_since(db, before)
    assert len(requests) == 1
    first_row = db.execute(
        "select to_jsonb(q) from public.queue as q where q.id = %s", (three[0],)
    ).fetchone()[0]
    assert requests[0] | {"id": None} == {
        "id": None, "method": "POST",
        "url": "https://abcdefgh.supabase.co/functions/v1/process-queue",
        "headers": {"Content-Type": "application/json", "apikey": "sb_secret_webhook123"},
        "body": {"type": "INSERT", "table": "queue", "schema": "public",
                 "record": first_row, "old_record": None, "pending_count": 3},
        "timeout_milliseconds": WEBHOOK_TIMEOUT_MS,
    }
    assert wake_state(db) == {"wake_queued": True, "drain_id": None}


@pytest.mark.parametrize(
    ("secret_key", "legacy_key", "headers"),
    [(None, "eyJ.legacy.anon", {"Authorization": "Bearer eyJ.legacy.anon"}),
     ("sb_secret_new", "eyJ.legacy.anon",
      {"apikey": "sb_secret_new", "Authorization": "Bearer eyJ.legacy.anon"})],
    ids=["before-the-switch", "during-the-switch"],
)
def test_the_legacy_key_is_sent_as_a_bearer_while_it_is_stored(
    funded_market, secret_key: str | None, legacy_key: str, headers: dict
) -> None:
    """A deployment that has not switched keeps working; during the switch both the old
    function (verify_jwt) and the new one (secret key) accept the same request."""
    db, users, ticker = funded_market
    configure_vault(db, "https://abcdefgh.supabase.co", secret_key, legacy_key)
    before = last_request_id(db)
    insert_buys(db, users[:1], ticker, "10", per_user=1)
    [request] = requests_since(db, before)
    assert request["headers"] == {"Content-Type": "application/json", **headers}


def test_no_new_wake_while_one_is_queued_until_it_times_out(funded_market) -> None:
    db, users, ticker = funded_market
    configure_vault(db, "https://abcdefgh.supabase.co", "sb_secret_k")
    before = last_request_id(db)
    # Ten users, two orders each: the API's INSERT allows at most 5 pending per user.
    many = users + [new_user(db, balance=1000) for _ in range(8)]
    act_as(db, "service_role")
    for i in range(20):
        insert_buys(db, [many[i % 10]], ticker, "1", per_user=1)
    act_as_owner(db)
    assert len(requests_since(db, before)) == 1

    age_wake_state(db)  # the function never picked the wake up (unreachable)
    insert_buys(db, users, ticker, "1", per_user=1)
    insert_buys(db, users, ticker, "1", per_user=1)
    assert len(requests_since(db, before)) == 2


def test_no_wake_while_a_drain_runs_until_it_times_out(funded_market) -> None:
    db, users, ticker = funded_market
    configure_vault(db, "https://abcdefgh.supabase.co", "sb_secret_k")
    drain_id = begin_drain(db)
    assert wake_state(db) == {"wake_queued": False, "drain_id": uuid.UUID(drain_id)}
    before = last_request_id(db)
    for _ in range(5):
        insert_buys(db, users, ticker, "1", per_user=1)
    assert requests_since(db, before) == []

    age_wake_state(db)  # the function was killed mid-drain
    insert_buys(db, users, ticker, "1", per_user=1)
    assert len(requests_since(db, before)) == 1


def test_outside_read_committed_every_statement_wakes(cluster: Cluster) -> None:
    """A repeatable-read snapshot may predate a drain's end, so it cannot coalesce."""
    with cluster.connect("supabase_admin") as conn:
        try:
            conn.execute("set transaction isolation level repeatable read")
            reset_wake_state(conn)
            users = [new_user(conn, balance=100)]
            ticker = new_issuer(conn, "RRW")
            configure_vault(conn, "https://abcdefgh.supabase.co", "sb_secret_k")
            before = last_request_id(conn)
            for _ in range(3):
                insert_buys(conn, users, ticker, "1", per_user=1)
            assert len(requests_since(conn, before)) == 3
        finally:
            conn.rollback()


def test_a_deleted_wake_state_row_is_put_back(funded_market) -> None:
    db, users, ticker = funded_market
    configure_vault(db, "https://abcdefgh.supabase.co", "sb_secret_k")
    db.execute("delete from pauv.process_queue_wake_state")
    before = last_request_id(db)
    insert_buys(db, users, ticker, "1", per_user=1)
    insert_buys(db, users, ticker, "1", per_user=1)
    assert len(requests_since(db, before)) == 1
    assert wake_state(db) == {"wake_queued": True, "drain_id": None}


def test_inserts_that_add_no_pending_order_send_nothing(funded_market) -> None:
    db, users, ticker = funded_market
    configure_vault(db, "https://abcdefgh.supabase.co", "k")
    before = last_request_id(db)
    db.execute(
        "insert into public.queue (user_id, ticker, order_type, amount_usdp, status, processed_at)"
        " values (%s, %s, 'buy', 1, 'cancelled', now())", (users[0], ticker))
    db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
               " select %s, %s, 'buy', 1 where false", (users[0], ticker))
    assert requests_since(db, before) == []
    assert wake_state(db) == {"wake_queued": False, "drain_id": None}


@pytest.mark.parametrize(
    ("project_url", "secret_key"),
    [(None, None), ("https://abcdefgh.supabase.co", None), (None, "k"),
     ("https://abcdefgh.supabase.co", "  "), ("", "k")],
    ids=["no-secrets", "no-key", "no-url", "blank-key", "blank-url"],
)
def test_without_the_secrets_inserts_succeed_and_nothing_is_sent(
    funded_market, project_url: str | None, secret_key: str | None
) -> None:
    db, users, ticker = funded_market
    configure_vault(db, project_url, secret_key)
    before = last_request_id(db)
    act_as(db, "service_role")
    ids = insert_buys(db, users, ticker, "10", per_user=2)
    act_as_owner(db)
    assert len(ids) == 4
    assert db.execute(
        "select count(*) from public.queue where status = 'pending'").fetchone()[0] == 4
    assert requests_since(db, before) == []
    # Nothing was sent, so nothing is awaited: once configured, the next insert wakes.
    assert wake_state(db) == {"wake_queued": False, "drain_id": None}


def test_without_the_secrets_concurrent_inserts_do_not_wait_for_each_other(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    """Unconfigured, each insert used to claim the wake row, send nothing and release it,
    holding the row's lock until commit: a second placement waited for the first."""
    with market.connect("supabase_admin", autocommit=True) as conn:
        reset_wake_state(conn)
        assert conn.execute("select count(*) from vault.secrets").fetchone()[0] == 0
        users = [new_user(conn, balance=100) for _ in range(2)]
        ticker = new_issuer(conn, "NOW")
    first = market.connect()
    request.addfinalizer(first.close)
    assert len(insert_buys(first, users[:1], ticker, "5", per_user=1)) == 1  # not committed
    with market.connect(autocommit=True) as second:
        # Waiting would end in a lock timeout, which the trigger (best effort) turns into a
        # warning rather than failing the insert.
        second.execute("set lock_timeout = '2s'")
        notices: list[str] = []
        second.add_notice_handler(lambda d: notices.append(d.message_primary))
        assert len(insert_buys(second, users[1:], ticker, "5", per_user=1)) == 1
        assert notices == []
        first.commit()
        assert second.execute("select count(*) from public.queue where status = 'pending'"
                              ).fetchone()[0] == 2
        assert wake_state(second) == {"wake_queued": False, "drain_id": None}


@pytest.mark.parametrize("schema", ["net", "vault"])
def test_without_pg_net_or_vault_inserts_succeed(cluster: Cluster, schema: str) -> None:
    """The extension is dropped inside a transaction that is rolled back."""
    with cluster.connect("supabase_admin") as conn:
        try:
            users = [new_user(conn, balance=100)]
            ticker = new_issuer(conn, "NOX")
            configure_vault(conn, "https://abcdefgh.supabase.co", "k")
            conn.execute(f"drop schema {schema} cascade")
            notices: list[str] = []
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            act_as(conn, "service_role")
            ids = insert_buys(conn, users, ticker, "5", per_user=3)
            assert len(ids) == 3
            assert notices == []
        finally:
            conn.rollback()


def test_a_failing_pg_net_call_never_fails_the_insert(cluster: Cluster) -> None:
    with cluster.connect("supabase_admin") as conn:
        try:
            reset_wake_state(conn)
            users = [new_user(conn, balance=100)]
            ticker = new_issuer(conn, "ERR")
            configure_vault(conn, "https://abcdefgh.supabase.co", "k")
            # postgres also holds the API roles' grants (it is a member of them).
            conn.execute("revoke execute on function net.http_post(text, jsonb, jsonb, jsonb,"
                         " integer) from postgres, anon, authenticated, service_role")
            notices: list[tuple[str, str]] = []
            conn.add_notice_handler(lambda d: notices.append((d.severity, d.message_primary)))
            before = last_request_id(conn)
            act_as(conn, "service_role")
            ids = insert_buys(conn, users, ticker, "5", per_user=2)
            act_as_owner(conn)
            assert len(ids) == 2
            assert requests_since(conn, before) == []
            assert notices == [(
                "WARNING",
                "process-queue-webhook sent nothing: permission denied for function http_post"
                " (SQLSTATE 42501)",
            )]
        finally:
            conn.rollback()


def test_the_api_roles_cannot_read_the_vault_or_the_wake_state(db: psycopg.Connection) -> None:
    """Why the trigger function is SECURITY DEFINER (and lives in pauv). (pg_net's queue,
    where the key waits until it is sent, is pg_net's business: docs/webhook.md.)"""
    for role in ("service_role", "authenticated", "anon"):
        for query in ("select decrypted_secret from vault.decrypted_secrets",
                      "select * from pauv.process_queue_wake_state"):
            db.execute("savepoint s")
            act_as(db, role)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(query)
            db.execute("rollback to savepoint s")


def test_no_secret_or_project_url_in_any_migration() -> None:
    for path in sorted(MIGRATIONS.glob("*.sql")):
        text = path.read_text()
        assert "eyJ" not in text, f"{path.name} contains what looks like a JWT"
        assert not re.search(r"sb_(secret|publishable)_[A-Za-z0-9]", text), path.name
        assert not re.search(r"https?://[a-z0-9]+\.supabase\.co", text), path.name
        assert "create_secret" not in text, path.name


# --- the drain RPCs --------------------------------------------------------------------------


def test_a_drain_that_finds_new_orders_goes_on_and_one_that_finds_none_ends(
    funded_market,
) -> None:
    db, users, ticker = funded_market
    configure_vault(db, "https://abcdefgh.supabase.co", "sb_secret_k")
    drain_id = begin_drain(db)
    insert_buys(db, users, ticker, "1", per_user=1)
    assert end_drain(db, drain_id, "drained") is True
    assert wake_state(db) == {"wake_queued": False, "drain_id": uuid.UUID(drain_id)}
    db.execute("update public.queue set status = 'cancelled', processed_at = now()"
               " where status = 'pending'")
    before = last_request_id(db)
    assert end_drain(db, drain_id, "drained") is False
    assert wake_state(db) == {"wake_queued": False, "drain_id": None}
    assert requests_since(db, before) == []


@pytest.fixture
def draining(funded_market) -> tuple:
    """A drain runs and an order arrived during it; returns what tests need, and the last
    pg_net request id."""
    db, users, ticker = funded_market
    configure_vault(db, "https://abcdefgh.supabase.co", "sb_secret_k")
    drain_id = begin_drain(db)
    insert_buys(db, users, ticker, "1", per_user=1)
    return db, users, ticker, drain_id, last_request_id(db)


def test_a_drain_out_of_time_with_work_left_queues_the_next_wake(draining) -> None:
    db, _, _, drain_id, before = draining
    assert end_drain(db, drain_id, "time_budget") is False
    [request] = requests_since(db, before)
    assert request["headers"]["apikey"] == "sb_secret_k"
    assert request["body"]["type"] == "DRAIN_CONTINUE"
    assert wake_state(db) == {"wake_queued": True, "drain_id": None}


def test_a_failed_drain_is_not_re_woken_in_a_loop(draining) -> None:
    db, users, ticker, drain_id, before = draining
    assert end_drain(db, drain_id, "failed") is False
    insert_buys(db, users, ticker, "1", per_user=1)
    assert requests_since(db, before) == []  # until wake_timeout has passed
    assert wake_state(db) == {"wake_queued": True, "drain_id": None}
    age_wake_state(db)
    insert_buys(db, users, ticker, "1", per_user=1)
    assert len(requests_since(db, before)) == 1


def test_a_drain_taken_over_by_a_later_one_changes_nothing(funded_market) -> None:
    db, users, ticker = funded_market
    first = begin_drain(db)
    second = begin_drain(db)
    insert_buys(db, users, ticker, "1", per_user=1)
    assert end_drain(db, first, "time_budget") is False
    assert wake_state(db) == {"wake_queued": False, "drain_id": uuid.UUID(second)}


@pytest.mark.parametrize(("drain_id", "stopped_by", "message"), [
    (None, "drained", "p_drain_id is required: pass what begin_process_queue_drain() returned"),
    ("6f1c5a70-3b7f-4a4b-9a34-1f7f8c0b9d11", "done",
     "p_stopped_by must be drained, time_budget or failed, got done"),
    ("6f1c5a70-3b7f-4a4b-9a34-1f7f8c0b9d11", None,
     "p_stopped_by must be drained, time_budget or failed, got null"),
])
def test_end_of_drain_rejects_bad_arguments(db: psycopg.Connection, drain_id, stopped_by,
                                            message: str) -> None:
    act_as(db, "service_role")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as e:
        db.execute("select public.end_process_queue_drain(%s, %s)", (drain_id, stopped_by))
    assert e.value.diag.message_primary == message


def test_only_the_service_role_may_report_drains(db: psycopg.Connection) -> None:
    for role in ("anon", "authenticated"):
        for query in ("select public.begin_process_queue_drain()",
                      "select public.end_process_queue_drain(gen_random_uuid(), 'drained')"):
            db.execute("savepoint s")
            act_as(db, role)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(query)
            db.execute("rollback to savepoint s")


def _committed_setup(market: Cluster, ticker: str, users: int = 1) -> list:
    """Committed: `users` funded users, the issuer `ticker`, no wake queued nor drain."""
    with market.connect(autocommit=True) as conn:
        user_ids = [new_user(conn, balance=1000) for _ in range(users)]
        new_issuer(conn, ticker)
        reset_wake_state(conn)
    return user_ids


def test_the_end_of_a_drain_waits_for_an_insert_that_saw_it_running(market: Cluster) -> None:
    """The race that would strand an order: an insert sees the drain running (so sends no
    wake) and commits only after the drain found the queue empty. The end waits for it."""
    users = _committed_setup(market, "RCE")
    with market.connect(autocommit=True) as conn:
        drain_id = begin_drain(conn)
    with market.connect() as placing, market.connect(autocommit=True) as ending:
        act_as(placing, "service_role")
        insert_buys(placing, users, "RCE", "1", per_user=1)  # not committed yet
        outcome: list = []
        ender = threading.Thread(target=lambda: outcome.append(
            end_drain(ending, drain_id, "drained")))
        ender.start()
        ender.join(0.5)
        assert ender.is_alive(), "the end of the drain did not wait for the insert"
        placing.commit()
        ender.join(10)
        assert outcome == [True]  # it saw the order: the drain goes on
    with market.connect("supabase_admin", autocommit=True) as conn:
        conn.execute("truncate net.http_request_queue")


def test_an_insert_after_the_end_of_a_drain_sends_a_wake(market: Cluster) -> None:
    """The other order of events: the drain ended first, so the insert must wake."""
    users = _committed_setup(market, "RCW")
    with market.connect(autocommit=True) as conn:
        configure_vault(conn, "https://abcdefgh.supabase.co", "sb_secret_k")
        drain_id = begin_drain(conn)
    try:
        with market.connect() as ending, market.connect() as placing:
            assert end_drain(ending, drain_id, "drained") is False  # holds the lock
            before = last_request_id(placing)
            act_as(placing, "service_role")
            inserted = threading.Thread(
                target=lambda: insert_buys(placing, users, "RCW", "1", per_user=1))
            inserted.start()
            inserted.join(0.5)
            assert inserted.is_alive(), "the insert did not wait for the end of the drain"
            ending.commit()
            inserted.join(10)
            act_as_owner(placing)
            assert len(requests_since(placing, before)) == 1
            placing.rollback()
    finally:
        with market.connect("supabase_admin", autocommit=True) as conn:
            conn.execute("truncate net.http_request_queue")
            conn.execute("delete from vault.secrets where name in"
                         " ('project_url', 'process_queue_secret_key')")


# --- the PostgREST and functions-gateway stand-ins ----------------------------------------------


def post(url: str, body: dict | None = None, headers: dict | None = None,
         method: str = "POST") -> tuple[int, object]:
    data = json.dumps(body if body is not None else {}).encode() if method != "GET" else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            raw = res.read()
            return res.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


def as_key(key: str) -> dict[str, str]:
    return {"apikey": key, "Authorization": f"Bearer {key}"}


def test_postgrest_standin_runs_rpcs_as_the_key_or_jwt_role(
    market: Cluster, supabase_api: SupabaseApiStandin, api_keys: dict[str, str]
) -> None:
    with market.connect(autocommit=True) as conn:
        user_id = new_user(conn)
    rpc = f"{supabase_api.url}/rest/v1/rpc/deposit_usdp"
    args = {"p_user_id": str(user_id), "p_amount": "12.5"}
    denied = (401, {"code": "42501", "message": "permission denied for function deposit_usdp",
                    "details": None, "hint": None})

    assert post(rpc, args, as_key(api_keys["service_role"])) == (200, 12.5)
    assert post(rpc, args, {"apikey": api_keys["secret"]}) == (200, 25)
    assert post(rpc, args, as_key(api_keys["webhook"])) == (200, 37.5)
    assert post(rpc, args, as_key(api_keys["anon"])) == denied
    assert post(rpc, args, {"apikey": api_keys["publishable"]}) == denied
    authenticated = make_jwt({"role": "authenticated", "sub": str(user_id)})
    for apikey in (api_keys["anon"], api_keys["publishable"]):
        assert post(rpc, args, {"apikey": apikey,
                                "Authorization": f"Bearer {authenticated}"})[0] == 403
    assert post(rpc, {**args, "p_amount": "0"}, as_key(api_keys["service_role"])) == (400, {
        "code": "22023", "message": "amount must be greater than 0 and at most 1000000000 USDP,"
        " got 0", "details": None, "hint": None})
    status, error = post(f"{supabase_api.url}/rest/v1/rpc/no_such_function", {},
                         as_key(api_keys["service_role"]))
    assert (status, error["code"]) == (404, "PGRST202")
    forged = make_jwt({"role": "service_role"}, secret="not-the-project-secret-not-at-all")
    assert post(rpc, args, as_key(forged)) == (401, {
        "code": "PGRST301", "message": "JWSError JWSInvalidSignature", "details": None,
        "hint": None})
    assert post(rpc, args, {"apikey": new_api_key("secret")})[1]["message"] == "Invalid API key"
    assert post(rpc, args, {})[0] == 401
    supabase_api.legacy_keys_enabled = False
    try:
        assert post(rpc, args, as_key(api_keys["service_role"]))[1]["message"] == (
            "Legacy API keys are disabled")
        assert post(rpc, args, {"apikey": api_keys["secret"]}) == (200, 50)
    finally:
        supabase_api.legacy_keys_enabled = True
    with market.connect() as conn:
        assert conn.execute("select usdp_balance from public.users where user_id = %s",
                            (user_id,)).fetchone()[0] == Decimal("50")


def test_the_function_accepts_only_secret_keys(
    supabase_api: SupabaseApiStandin, process_queue_function: str, api_keys: dict[str, str],
    market: Cluster,
) -> None:
    """Through the gateway (verify_jwt = false passes everything through): each key kind."""
    url = f"{supabase_api.url}{FUNCTION_PATH}"
    user_jwt = make_jwt({"role": "authenticated", "sub": "7d9f6a3e-0000-4000-8000-000000000001"})
    refusal = {"success": False, "error": "a secret API key is required (apikey header)"}
    refused = {
        "none": ({}, "MISSING_CREDENTIALS"),
        "publishable": ({"apikey": api_keys["publishable"]}, "INVALID_API_KEY"),
        "legacy anon": (as_key(api_keys["anon"]), "INVALID_API_KEY"),
        "legacy service_role": (as_key(api_keys["service_role"]), "INVALID_API_KEY"),
        "user JWT": ({"apikey": api_keys["publishable"],
                      "Authorization": f"Bearer {user_jwt}"}, "INVALID_API_KEY"),
        "user JWT alone": ({"Authorization": f"Bearer {user_jwt}"}, "INVALID_CREDENTIALS"),
    }
    for what, (headers, code) in refused.items():
        assert post(url, headers=headers) == (401, refusal | {"code": code}), what
    with market.connect() as conn:  # no drain was started
        assert conn.execute("select count(*) from pauv.process_queue_wake_state"
                            " where drain_id is not null").fetchone()[0] == 0
    for key in (api_keys["webhook"], api_keys["secret"]):
        status, body = post(url, headers={"apikey": key})
        assert (status, body["success"], body["stopped_by"]) == (200, True, "drained")
    assert post(url, headers={"apikey": api_keys["webhook"]}, method="GET") == (
        405, {"success": False, "error": "method GET not allowed"})


def test_the_gateway_checks_jwts_only_where_verify_jwt_is_on(
    supabase_api: SupabaseApiStandin, process_queue_function: str,
) -> None:
    supabase_api.register_function("jwt-checked", process_queue_function, verify_jwt=True)
    url = f"{supabase_api.url}/functions/v1/jwt-checked"
    assert post(url) == (401, {"code": 401, "message": "Missing authorization header"})
    forged = make_jwt({"role": "anon"}, secret="not-the-project-secret-not-at-all")
    assert post(url, headers={"Authorization": f"Bearer {forged}"}) == (
        401, {"code": 401, "message": "Invalid JWT"})


# --- end to end ------------------------------------------------------------------------------


def _reset_platform(market: Cluster) -> None:
    with market.connect("supabase_admin", autocommit=True) as conn:
        conn.execute("truncate net.http_request_queue, net._http_response")
        conn.execute("delete from vault.secrets where name in"
                     " ('project_url', 'process_queue_secret_key', 'process_queue_invoke_key')")


@pytest.fixture
def webhook_configured(market: Cluster, supabase_api: SupabaseApiStandin,
                       api_keys: dict[str, str]) -> Iterator[Cluster]:
    """Vault holds the project URL and the webhook's own secret key; pg_net's queue starts
    and ends empty."""
    _reset_platform(market)
    with market.connect(autocommit=True) as conn:
        configure_vault(conn, supabase_api.url, api_keys["webhook"])
    try:
        yield market
    finally:
        _reset_platform(market)


def place_and_deliver(market: Cluster, users: list, ticker: str, statements: int) -> list[dict]:
    """`statements` INSERT statements of one buy per user, committed, then pg_net's worker."""
    with market.connect() as conn:
        act_as(conn, "service_role")
        for _ in range(statements):
            insert_buys(conn, users, ticker, "1", per_user=1)
        conn.commit()
    return deliver_http_requests(market)


def statuses(market: Cluster) -> list[tuple]:
    with market.connect() as conn:
        return conn.execute(
            "select status, count(*) from public.queue group by status order by status"
        ).fetchall()


def test_bulk_inserts_wake_the_function_once_and_it_drains_the_queue(
    webhook_configured: Cluster, supabase_api: SupabaseApiStandin,
    process_queue_function: str, api_keys: dict[str, str],
) -> None:
    market = webhook_configured
    ticker = "E2E"
    # 28 users: 10 place 5 orders in one statement, 18 place 90 in nine more (5 pending each,
    # the most the API's INSERT allows).
    everyone = _committed_setup(market, ticker, users=28)
    users, rest = everyone[:10], everyone[10:]
    with market.connect() as conn:
        act_as(conn, "service_role")
        ids = insert_buys(conn, users, ticker, "10", per_user=5)
        for k in range(9):  # more statements while the wake is queued: no more requests
            insert_buys(conn, [rest[(k * 10 + j) % 18] for j in range(10)], ticker, "1",
                        per_user=1)
        conn.commit()
    assert len(ids) == 50

    with market.connect() as conn:
        requests = requests_since(conn, 0)
    assert len(requests) == 1
    request = requests[0]
    assert request["url"] == f"{supabase_api.url}{FUNCTION_PATH}"
    assert request["headers"] == {"Content-Type": "application/json",
                                  "apikey": api_keys["webhook"]}
    assert request["body"]["record"]["id"] == ids[0]
    assert request["body"]["pending_count"] == 50

    delivered = deliver_http_requests(market)
    assert len(delivered) == 1
    assert delivered[0]["status"] == 200, delivered
    summary = json.loads(delivered[0]["content"])
    assert {k: summary[k] for k in ("success", "total_processed", "successful", "failed",
                                    "has_more", "stopped_by")} == {
        "success": True, "total_processed": 140, "successful": 140, "failed": 0,
        "has_more": False, "stopped_by": "drained"}

    assert statuses(market) == [("completed", 140)]
    with market.connect() as conn:
        assert conn.execute(
            "select count(distinct queue_id) from public.transactions where queue_id = any(%s)",
            (ids,)).fetchone()[0] == 50
        assert conn.execute("select count(*) from net.http_request_queue").fetchone()[0] == 0
        assert conn.execute(
            "select status_code from net._http_response where id = %s", (request["id"],)
        ).fetchone()[0] == 200
        assert wake_state(conn) == {"wake_queued": False, "drain_id": None}

    # The drain ended idle: the next order wakes the function again.
    assert [d["status"] for d in place_and_deliver(market, users, ticker, 1)] == [200]
    assert statuses(market) == [("completed", 150)]


def test_rotating_the_webhook_key_loses_no_wake(
    webhook_configured: Cluster, supabase_api: SupabaseApiStandin,
    process_queue_function: str, api_keys: dict[str, str],
) -> None:
    """docs/webhook.md's rotation: create a second key, store it in Vault, delete the old
    one. Each step's wake is accepted; afterwards the old key is refused."""
    market = webhook_configured
    ticker = "ROT"
    users = _committed_setup(market, ticker, users=3)
    old_key = api_keys["webhook"]
    new_key = new_api_key("secret")
    supabase_api.secret_keys["process_queue_webhook_2"] = new_key
    try:
        # 1. The new key exists (the platform gives it to functions): both are accepted.
        with serve_process_queue(supabase_api):
            assert [d["status"] for d in place_and_deliver(market, users, ticker, 2)] == [200]
            with market.connect(autocommit=True) as conn:
                set_vault_secret(conn, "process_queue_secret_key", new_key)  # 2. Vault
            assert [d["status"] for d in place_and_deliver(market, users, ticker, 2)] == [200]
        # 3. The old key is deleted in the dashboard.
        del supabase_api.secret_keys["process_queue_webhook"]
        with serve_process_queue(supabase_api):
            assert [d["status"] for d in place_and_deliver(market, users, ticker, 2)] == [200]
            url = f"{supabase_api.url}{FUNCTION_PATH}"
            assert post(url, headers={"apikey": old_key})[0] == 401
            assert post(url, headers={"apikey": new_key})[0] == 200
        assert statuses(market) == [("completed", 18)]
    finally:
        supabase_api.secret_keys["process_queue_webhook"] = old_key
        del supabase_api.secret_keys["process_queue_webhook_2"]


def test_with_legacy_keys_disabled_the_secret_key_still_drains(
    webhook_configured: Cluster, supabase_api: SupabaseApiStandin,
    process_queue_function: str,
) -> None:
    """The end of 2026: legacy keys off. The webhook and the function never needed them."""
    market = webhook_configured
    ticker = "OFF"
    users = _committed_setup(market, ticker, users=2)
    supabase_api.legacy_keys_enabled = False
    try:
        with serve_process_queue(supabase_api):
            assert [d["status"] for d in place_and_deliver(market, users, ticker, 3)] == [200]
    finally:
        supabase_api.legacy_keys_enabled = True
    assert statuses(market) == [("completed", 6)]


# --- the operator's snippets ------------------------------------------------------------------


def test_every_sql_snippet_of_the_docs_runs(db: psycopg.Connection) -> None:
    """docs/webhook.md's SQL, in order, as the migration role 'postgres' (rolled back).
    Blocks starting with '-- hosted only' need the real extension and are skipped."""
    text = (MIGRATIONS.parent.parent / "docs" / "webhook.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
    runnable = [b for b in blocks if not b.startswith("-- hosted only")]
    assert len(blocks) == 7 and len(runnable) == 6
    for block in runnable:
        db.execute(block)
    secrets = db.execute(
        "select name, decrypted_secret from vault.decrypted_secrets"
        " where name in ('project_url', 'process_queue_secret_key', 'process_queue_invoke_key')"
        " order by name"
    ).fetchall()
    assert secrets == [("process_queue_secret_key", "sb_secret_YOUR_NEW_WEBHOOK_KEY"),
                       ("project_url", "https://YOUR_PROJECT_REF.supabase.co")]
    assert db.execute(
        "select tgenabled from pg_trigger where tgrelid = 'public.queue'::regclass"
        " and tgname = 'process-queue-webhook'").fetchone()[0] == "O"
