"""The queue webhook (one pg_net request per INSERT statement, configured through Vault)
and the process-queue edge function: its Deno tests, and the whole path end to end:
INSERT -> webhook -> pg_net -> function under Deno -> PostgREST RPC -> orders completed."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
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
)
from postgrest_standin import SupabaseApiStandin, make_jwt

FUNCTION_DIR = FUNCTIONS / "process-queue"
WEBHOOK_TIMEOUT_MS = 30000


# --- helpers -------------------------------------------------------------------------------


def configure_vault(conn: psycopg.Connection, project_url: str | None,
                    invoke_key: str | None) -> None:
    """The operator's setup step: the project URL and the invoke key into Vault."""
    if project_url is not None:
        conn.execute("select vault.create_secret(%s, 'project_url')", (project_url,))
    if invoke_key is not None:
        conn.execute("select vault.create_secret(%s, 'process_queue_invoke_key')", (invoke_key,))


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


@pytest.fixture
def funded_market(db: psycopg.Connection) -> tuple[psycopg.Connection, list, str]:
    """Inside the rolled-back transaction: two funded users and an issuer."""
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
    expected = len(re.findall(r"^Deno\.test\(", (FUNCTION_DIR / "index_test.ts").read_text(),
                              re.MULTILINE))
    proc = subprocess.run(
        [str(DENO), "test", "--frozen", "--no-prompt", "index_test.ts"],
        cwd=FUNCTION_DIR, env=deno_env(), capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = re.search(r"ok \| (\d+) passed \| (\d+) failed", proc.stdout)
    assert summary, proc.stdout
    assert (int(summary.group(1)), int(summary.group(2))) == (expected, 0)
    assert expected == 11


# --- the trigger -----------------------------------------------------------------------------


def test_one_request_per_statement_not_per_row(funded_market) -> None:
    db, users, ticker = funded_market
    configure_vault(db, "https://abcdefgh.supabase.co/", "invoke-key-123")
    before = last_request_id(db)

    act_as(db, "service_role")
    three = insert_buys(db, users[:1], ticker, "10", per_user=3)
    one = insert_buys(db, users[1:], ticker, "2.5", per_user=1)
    act_as_owner(db)

    requests = requests_since(db, before)
    assert len(requests) == 2
    first_row = db.execute(
        "select to_jsonb(q) from public.queue as q where q.id = %s", (three[0],)
    ).fetchone()[0]
    assert requests[0]["body"] == {
        "type": "INSERT", "table": "queue", "schema": "public",
        "record": first_row, "old_record": None, "pending_count": 3,
    }
    assert requests[1]["body"]["record"]["id"] == one[0]
    assert requests[1]["body"]["pending_count"] == 1
    for request in requests:
        assert request["method"] == "POST"
        assert request["url"] == "https://abcdefgh.supabase.co/functions/v1/process-queue"
        assert request["headers"] == {"Content-Type": "application/json",
                                      "Authorization": "Bearer invoke-key-123"}
        assert request["timeout_milliseconds"] == WEBHOOK_TIMEOUT_MS


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


@pytest.mark.parametrize(
    ("project_url", "invoke_key"),
    [(None, None), ("https://abcdefgh.supabase.co", None), (None, "k"),
     ("https://abcdefgh.supabase.co", "  "), ("", "k")],
    ids=["no-secrets", "no-key", "no-url", "blank-key", "blank-url"],
)
def test_without_the_secrets_inserts_succeed_and_nothing_is_sent(
    funded_market, project_url: str | None, invoke_key: str | None
) -> None:
    db, users, ticker = funded_market
    configure_vault(db, project_url, invoke_key)
    before = last_request_id(db)
    act_as(db, "service_role")
    ids = insert_buys(db, users, ticker, "10", per_user=2)
    act_as_owner(db)
    assert len(ids) == 4
    assert db.execute(
        "select count(*) from public.queue where status = 'pending'").fetchone()[0] == 4
    assert requests_since(db, before) == []


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


def test_the_inserting_roles_cannot_read_the_vault(db: psycopg.Connection) -> None:
    """Why the trigger function is SECURITY DEFINER (and lives in pauv)."""
    for role in ("service_role", "authenticated", "anon"):
        db.execute("savepoint s")
        act_as(db, role)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("select decrypted_secret from vault.decrypted_secrets")
        db.execute("rollback to savepoint s")


def test_no_secret_or_project_url_in_any_migration() -> None:
    for path in sorted(MIGRATIONS.glob("*.sql")):
        text = path.read_text()
        assert "eyJ" not in text, f"{path.name} contains what looks like a JWT"
        assert not re.search(r"https?://[a-z0-9]+\.supabase\.co", text), path.name
        assert "create_secret" not in text, path.name


# --- the PostgREST and functions-gateway stand-ins ----------------------------------------------


def post(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, object]:
    data = json.dumps(body if body is not None else {}).encode()
    req = urllib.request.Request(url, data=data, method="POST",
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


def test_postgrest_standin_runs_rpcs_as_the_jwt_role(
    market: Cluster, supabase_api: SupabaseApiStandin, api_keys: dict[str, str]
) -> None:
    with market.connect(autocommit=True) as conn:
        user_id = new_user(conn)
    rpc = f"{supabase_api.url}/rest/v1/rpc/deposit_usdp"
    args = {"p_user_id": str(user_id), "p_amount": "12.5"}

    assert post(rpc, args, as_key(api_keys["service_role"])) == (200, 12.5)
    assert post(rpc, args, as_key(api_keys["anon"])) == (401, {
        "code": "42501", "message": "permission denied for function deposit_usdp",
        "details": None, "hint": None})
    authenticated = make_jwt({"role": "authenticated", "sub": str(user_id)})
    assert post(rpc, args, {"apikey": api_keys["anon"],
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
    assert post(rpc, args, {})[0] == 401
    with market.connect() as conn:
        assert conn.execute("select usdp_balance from public.users where user_id = %s",
                            (user_id,)).fetchone()[0] == Decimal("12.5")


def test_functions_gateway_verifies_the_jwt(
    supabase_api: SupabaseApiStandin, process_queue_function: str
) -> None:
    url = f"{supabase_api.url}/functions/v1/process-queue"
    assert post(url) == (401, {"code": 401, "message": "Missing authorization header"})
    forged = make_jwt({"role": "anon"}, secret="not-the-project-secret-not-at-all")
    assert post(url, headers={"Authorization": f"Bearer {forged}"}) == (
        401, {"code": 401, "message": "Invalid JWT"})


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture
def webhook_configured(market: Cluster, supabase_api: SupabaseApiStandin,
                       api_keys: dict[str, str]) -> Iterator[Cluster]:
    """Vault holds the project URL and the anon key (enough to invoke the function with
    verify_jwt, nothing more); pg_net's queue starts and ends empty."""
    def reset() -> None:
        with market.connect("supabase_admin", autocommit=True) as conn:
            conn.execute("truncate net.http_request_queue, net._http_response")
            conn.execute("delete from vault.secrets"
                         " where name in ('project_url', 'process_queue_invoke_key')")
    reset()
    with market.connect(autocommit=True) as conn:
        configure_vault(conn, supabase_api.url, api_keys["anon"])
    try:
        yield market
    finally:
        reset()


def test_bulk_insert_wakes_the_function_which_drains_the_queue(
    webhook_configured: Cluster, supabase_api: SupabaseApiStandin,
    process_queue_function: str, api_keys: dict[str, str],
) -> None:
    market = webhook_configured
    with market.connect(autocommit=True) as conn:
        users = [new_user(conn, balance=1000) for _ in range(10)]
        ticker = new_issuer(conn, "E2E")
    with market.connect() as conn:
        act_as(conn, "service_role")
        ids = insert_buys(conn, users, ticker, "10", per_user=5)
        conn.commit()
    assert len(ids) == 50

    with market.connect() as conn:
        requests = requests_since(conn, 0)
    assert len(requests) == 1
    request = requests[0]
    assert request["url"] == f"{supabase_api.url}/functions/v1/process-queue"
    assert request["headers"]["Authorization"] == f"Bearer {api_keys['anon']}"
    assert request["body"]["record"]["id"] == ids[0]
    assert request["body"]["pending_count"] == 50

    delivered = deliver_http_requests(market)
    assert len(delivered) == 1
    assert delivered[0]["status"] == 200, delivered
    summary = json.loads(delivered[0]["content"])
    assert {k: summary[k] for k in ("success", "total_processed", "successful", "failed",
                                    "has_more", "iterations")} == {
        "success": True, "total_processed": 50, "successful": 50, "failed": 0,
        "has_more": False, "iterations": 1}

    with market.connect() as conn:
        statuses = conn.execute(
            "select status, count(*) from public.queue group by status").fetchall()
        assert statuses == [("completed", 50)]
        assert conn.execute(
            "select count(distinct queue_id) from public.transactions where queue_id = any(%s)",
            (ids,)).fetchone()[0] == 50
        assert conn.execute("select count(*) from net.http_request_queue").fetchone()[0] == 0
        assert conn.execute(
            "select status_code from net._http_response where id = %s", (request["id"],)
        ).fetchone()[0] == 200


# --- the operator's snippets ------------------------------------------------------------------


def test_every_sql_snippet_of_the_docs_runs(db: psycopg.Connection) -> None:
    """docs/webhook.md's SQL, in order, as the migration role 'postgres' (rolled back).
    Blocks starting with '-- hosted only' need the real extension and are skipped."""
    text = (MIGRATIONS.parent.parent / "docs" / "webhook.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
    runnable = [b for b in blocks if not b.startswith("-- hosted only")]
    assert len(blocks) == 5 and len(runnable) == 4
    for block in runnable:
        db.execute(block)
    secrets = db.execute(
        "select name, decrypted_secret from vault.decrypted_secrets"
        " where name in ('project_url', 'process_queue_invoke_key') order by name"
    ).fetchall()
    assert secrets == [("process_queue_invoke_key", "YOUR_NEW_ANON_KEY"),
                       ("project_url", "https://YOUR_PROJECT_REF.supabase.co")]
    assert db.execute(
        "select tgenabled from pg_trigger where tgrelid = 'public.queue'::regclass"
        " and tgname = 'process-queue-webhook'").fetchone()[0] == "O"
