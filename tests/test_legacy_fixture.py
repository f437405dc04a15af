"""The legacy fixture (tests/legacy/) matches the facts document
(/work/shared/legacy/PAUV_LEGACY_SCHEMA.md): catalog facts on the freshly applied schema,
behaviour facts (the reproduced bugs), the built market's §10 data facts, the bulk
fabrication's shapes and the checksum's sensitivity. One legacy cluster and one market
for the module; tests that write roll back."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from harness import Cluster, throwaway_cluster
from legacy import apply_legacy_schema
from legacy.bulk import fabricate_legacy_market_bulk
from legacy.checksum import database_checksum
from legacy.market import build_legacy_market, summarize


@pytest.fixture(scope="module")
def legacy() -> Iterator[dict]:
    """A cluster with the platform stand-in and the legacy schema (no migration of
    ours), its catalog facts read before any data, then the market built once."""
    with throwaway_cluster(prefix="pauv-legacy-", push=False) as c:
        apply_legacy_schema(c)
        with c.connect("supabase_admin") as conn:
            fresh = {
                "issuer_trading_rows": conn.execute(
                    "select count(*) from public.issuer_trading").fetchone()[0],
                "details": conn.execute(
                    "select count(*) from public.issuer_details").fetchone()[0],
            }
            before_push = database_checksum(conn)
            push = c.push_migrations()
            after_push = database_checksum(conn)
        summary = build_legacy_market(c)
        yield {"cluster": c, "fresh": fresh, "push": push, "summary": summary,
               "checksums_around_push": (before_push, after_push)}


@pytest.fixture
def conn(legacy: dict) -> Iterator[psycopg.Connection]:
    """'postgres' in a transaction that is rolled back."""
    c = legacy["cluster"].connect()
    try:
        yield c
    finally:
        c.rollback()
        c.close()


def as_api(conn: psycopg.Connection, role: str, sub: uuid.UUID | None = None) -> None:
    claims = {"role": role} | ({"sub": str(sub)} if sub else {})
    conn.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                 (role, json.dumps(claims)))


def one(conn: psycopg.Connection, sql: str, params: tuple = ()):
    return conn.execute(sql, params).fetchone()[0]


# --- catalog (§1-§8) ------------------------------------------------------------------------

COLUMNS = {"issuer_details": 11, "issuer_trading": 9, "users": 7, "portfolio": 7, "queue": 10,
           "transactions": 14, "price_history": 5, "issuer_stats_cache": 11, "deposits": 7,
           "payment_transactions": 11}
OTHER_TABLES = {"tags", "issuer_links", "issuer_requests", "issuer_invites",
                "launch_notifications", "security_audit", "waitlist", "rate_limit_log"}


def test_tables_columns_and_rls(conn: psycopg.Connection) -> None:
    counts = dict(conn.execute(
        "select table_name, count(*) from information_schema.columns"
        " where table_schema = 'public' group by table_name").fetchall())
    assert {t: counts[t] for t in COLUMNS} == COLUMNS
    assert set(counts) == set(COLUMNS) | OTHER_TABLES
    without_rls = conn.execute(
        "select relname from pg_class where relnamespace = 'public'::regnamespace"
        " and relkind = 'r' and not relrowsecurity").fetchall()
    assert without_rls == []
    # unbounded numerics, a plain (not generated) current_price, no checks on the curve
    assert one(conn, "select count(*) from information_schema.columns where table_schema ="
               " 'public' and data_type = 'numeric' and numeric_precision is not null") == 0
    assert one(conn, "select attgenerated from pg_attribute where attrelid ="
               " 'public.issuer_trading'::regclass and attname = 'current_price'") == ""
    assert one(conn, "select count(*) from pg_constraint where conrelid ="
               " 'public.issuer_trading'::regclass and contype = 'c'") == 0


def test_keys_and_foreign_keys(conn: psycopg.Connection) -> None:
    defs = dict(conn.execute(
        "select conname, pg_get_constraintdef(oid) from pg_constraint"
        " where connamespace = 'public'::regnamespace").fetchall())
    assert defs["issuer_details_ticker_unique"] == "UNIQUE (ticker)"
    assert defs["fk_portfolio_user_id"].startswith("FOREIGN KEY (user_id) REFERENCES auth.users(id)")
    assert defs["fk_transactions_queue_id"] == (
        "FOREIGN KEY (queue_id) REFERENCES queue(id) ON DELETE SET NULL")
    assert defs["users_usdp_balance_non_negative"] == "CHECK ((usdp_balance >= (0)::numeric))"
    assert defs["issuer_invites_issuer_id_fkey"].startswith(
        "FOREIGN KEY (issuer_id) REFERENCES issuer_details(id)")
    assert "deposits_amount_usdp_check" not in defs
    assert one(conn, "select pg_get_expr(adbin, adrelid) from pg_attrdef where adrelid ="
               " 'public.issuer_details'::regclass and adnum = (select attnum from pg_attribute"
               " where attrelid = 'public.issuer_details'::regclass and attname = 'is_hidden')"
               ) == "true"
    assert one(conn, "select attidentity from pg_attribute where attrelid ="
               " 'public.price_history'::regclass and attname = 'id'") == "a"
    assert one(conn, "select count(*) from pg_class where relkind = 'S'"
               " and relnamespace = 'public'::regnamespace") == 1


def test_enums(conn: psycopg.Connection) -> None:
    enums = dict(conn.execute(
        "select t.typname, array_agg(e.enumlabel order by e.enumsortorder) from pg_type as t"
        " join pg_enum as e on e.enumtypid = t.oid where t.typnamespace = 'public'::regnamespace"
        " group by t.typname").fetchall())
    assert enums == {"order_type": ["buy", "sell"],
                     "queue_status": ["pending", "processing", "completed", "failed", "cancelled"],
                     "transaction_status": ["completed", "failed", "refunded"]}


def test_functions_security_and_grants(conn: psycopg.Connection) -> None:
    rows = conn.execute("""
        select p.proname, p.prosecdef, p.proconfig,
               has_function_privilege('anon', p.oid, 'execute'),
               has_function_privilege('authenticated', p.oid, 'execute'),
               has_function_privilege('service_role', p.oid, 'execute'),
               pg_get_userbyid(p.proowner)
        from pg_proc as p where p.pronamespace = 'public'::regnamespace""").fetchall()
    assert len(rows) == 36
    definer = [r for r in rows if r[1]]
    assert len(definer) == 20
    assert sum(1 for r in definer if r[3]) == 19
    assert sum(1 for r in definer if r[2] is None) == 16
    assert sorted(r[0] for r in rows if r[2] is not None) == [
        "check_email_exists", "get_user_id_by_email", "log_audit_entry", "set_admin_claim"]
    assert all(r[2] == ["search_path=public"] for r in rows if r[2] is not None)
    not_for_anon = [r[0] for r in rows if not r[3] or not r[4]]
    assert not_for_anon == ["get_user_id_by_email"]
    assert all(r[5] for r in rows) and {r[6] for r in rows} == {"postgres"}
    sigs = {one(conn, "select %s::regprocedure::text", (s,)) for s in (
        "public.process_all_pending_orders()", "public.refresh_issuer_stats_cache()",
        "public.process_order_batch(integer)", "public.get_ohlc_data(text, interval,"
        " timestamptz, timestamptz)")}
    assert len(sigs) == 4
    assert one(conn, "select prorettype::regtype::text from pg_proc"
               " where oid = 'public.refresh_issuer_stats_cache()'::regprocedure") == "void"


def test_table_privileges_and_auth_admin_grants(conn: psycopg.Connection) -> None:
    missing = conn.execute("""
        select c.relname, r.rolname from pg_class as c
        cross join (values ('anon'), ('authenticated'), ('service_role')) as r (rolname)
        where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
          and not (has_table_privilege(r.rolname, c.oid, 'select')
                   and has_table_privilege(r.rolname, c.oid, 'insert')
                   and has_table_privilege(r.rolname, c.oid, 'update')
                   and has_table_privilege(r.rolname, c.oid, 'delete')
                   and has_table_privilege(r.rolname, c.oid, 'truncate'))""").fetchall()
    assert missing == []
    assert one(conn, "select has_table_privilege('supabase_auth_admin', 'public.waitlist',"
               " 'insert') and has_table_privilege('supabase_auth_admin', 'public.users',"
               " 'update') and not has_table_privilege('supabase_auth_admin',"
               " 'public.queue', 'select')")
    assert one(conn, "select has_function_privilege('supabase_auth_admin',"
               " 'public.generate_referral_code()', 'execute')")


def test_triggers(conn: psycopg.Connection) -> None:
    triggers = set(conn.execute(
        "select tgrelid::regclass::text || ':' || tgname from pg_trigger as t join pg_class as c"
        " on c.oid = t.tgrelid where not t.tgisinternal"
        " and c.relnamespace in ('public'::regnamespace, 'auth'::regnamespace)").fetchall())
    expected = {
        "auth.users:on_auth_user_created",
        "issuer_details:trg_create_issuer_links_on_details_insert",
        "issuer_trading:trigger_issuer_trading_updated_at",
        "issuer_trading:trigger_record_price_history",
        "issuer_trading:trigger_record_price_history_insert",
        "users:trigger_users_updated_at", "users:trigger_protect_financial_columns",
        "users:on_user_created_add_to_waitlist", "portfolio:trigger_portfolio_updated_at",
        "queue:trigger_queue_updated_at", "queue:process-queue-webhook",
        "transactions:trigger_transactions_updated_at",
        "payment_transactions:payment_transactions_updated_at",
    }
    assert {t[0] for t in triggers} == expected
    webhook = one(conn, "select pg_get_triggerdef(oid) from pg_trigger"
                  " where tgname = 'process-queue-webhook'")
    assert "AFTER INSERT ON public.queue FOR EACH ROW" in webhook
    assert "supabase_functions.http_request('https://" in webhook
    assert "/functions/v1/process-queue', 'POST'" in webhook and "'5000')" in webhook


def test_cron_jobs(conn: psycopg.Connection) -> None:
    jobs = {r[0]: r[1:] for r in conn.execute(
        "select jobname, schedule, username, database, command from cron.job").fetchall()}
    assert {k: v[:3] for k, v in jobs.items()} == {
        "refresh-issuer-stats-cache": ("*/5 * * * *", "postgres", "postgres"),
        "hourly-price-snapshot": ("0 * * * *", "postgres", "postgres"),
        "cleanup-old-queue-entries": ("0 3 * * *", "postgres", "postgres"),
        "cleanup-rate-limit-log": ("*/15 * * * *", "postgres", "postgres"),
    }
    assert jobs["refresh-issuer-stats-cache"][3] == "select refresh_issuer_stats_cache()"
    # the hourly job is broken as on the live project
    with pytest.raises(psycopg.errors.UndefinedColumn, match='"volume_24h"'):
        conn.execute(jobs["hourly-price-snapshot"][3])


def test_history_and_cli_refuses_push(legacy: dict, conn: psycopg.Connection) -> None:
    rows = conn.execute("select version, name from supabase_migrations.schema_migrations"
                        " order by version").fetchall()
    assert len(rows) == 59
    assert rows[0] == ("20260204165541", "create_issuer_details_table")
    assert rows[-2:] == [("20260226223917", "remote_schema"),
                         ("20260303211842", "remove_usdp_bonus")]
    push = legacy["push"]
    assert push.returncode != 0
    assert "Remote migration versions not found in local migrations directory" in (
        push.stdout + push.stderr)
    # the refused push wrote nothing: not one byte of catalog or data changed
    assert one(conn, "select count(*) from supabase_migrations.schema_migrations") == 59
    assert one(conn, "select to_regnamespace('pauv') is null")
    before, after = legacy["checksums_around_push"]
    assert before == after


def test_publication_storage_and_seeds(legacy: dict, conn: psycopg.Connection) -> None:
    assert conn.execute("select schemaname || '.' || tablename from pg_publication_tables"
                        " where pubname = 'supabase_realtime' order by 1").fetchall() == [
        ("public.issuer_trading",), ("public.transactions",)]
    assert conn.execute("select public, file_size_limit, allowed_mime_types from storage.buckets"
                        " where id = 'images'").fetchone() == (
        True, 10485760, ["image/png", "image/jpeg", "image/webp", "image/gif"])
    assert conn.execute("select cmd, count(*) from pg_policies where schemaname = 'storage'"
                        " group by cmd order by cmd").fetchall() == [
        ("DELETE", 1), ("INSERT", 1), ("SELECT", 1), ("UPDATE", 1)]
    assert legacy["fresh"] == {"issuer_trading_rows": 0, "details": 10}
    assert one(conn, "select count(*) from public.tags") == 6


# --- behaviour: the reproduced bugs (§4, §5, §11.7) -----------------------------------------

def test_anon_reads_every_balance_and_mints(legacy: dict, conn: psycopg.Connection) -> None:
    total = one(conn, "select count(*) from public.users")
    victim, before = conn.execute("select user_id, usdp_balance::text from public.users"
                                  " order by id limit 1").fetchone()
    as_api(conn, "anon")
    assert one(conn, "select count(*) from public.users") == total == legacy["summary"]["users"]
    assert one(conn, "select count(*) from public.transactions") == legacy["summary"]["trades"]
    # compared in SQL: Python's Decimal context would round ~1,000 decimals to 28 digits
    assert one(conn, "select public.increment_user_balance(%s, 1000000) = %s::numeric + 1000000",
               (victim, before))


def test_signed_in_user_promotes_self_and_rewrites_pending_order(conn: psycopg.Connection) -> None:
    user_id, order_id = conn.execute(
        "select user_id, id from public.queue where status = 'pending' and order_type = 'buy'"
        " order by id limit 1").fetchone()
    as_api(conn, "authenticated", user_id)
    assert one(conn, "select public.set_admin_claim(%s, true) ->> 'success'", (user_id,)) == "true"
    conn.execute("update public.queue set amount_usdp = 999999, order_type = 'sell',"
                 " status = 'cancelled' where id = %s", (order_id,))
    conn.execute("reset role")
    assert one(conn, "select raw_app_meta_data ->> 'admin' from auth.users where id = %s",
               (user_id,)) == "true"
    assert conn.execute("select amount_usdp, order_type::text, status::text from public.queue"
                        " where id = %s", (order_id,)).fetchone() == (999999, "sell", "cancelled")
    assert one(conn, "select count(*) from public.security_audit where admin_id = %s",
               (user_id,)) == 1


def test_balance_guard_reads_the_jwt_role(conn: psycopg.Connection) -> None:
    user_id = one(conn, "select user_id from public.users order by id limit 1")
    as_api(conn, "authenticated", user_id)
    with pytest.raises(psycopg.errors.RaiseException,
                       match="not authorized to modify your USDP balance"):
        conn.execute("select public.increment_user_balance(%s, 1)", (user_id,))


def test_signup_webhook_and_free_buy(conn: psycopg.Connection) -> None:
    """A sign-up gets users and waitlist rows; every order insert is one webhook call; a
    user whose users row is gone buys for free through execute_buy_order."""
    user_id = uuid.uuid4()
    conn.execute("insert into auth.users (id, email) values (%s, 'newbie@example.test')",
                 (user_id,))
    assert conn.execute("select username, usdp_balance from public.users where user_id = %s",
                        (user_id,)).fetchone() == ("newbie", 0)
    position = one(conn, "select position from public.waitlist where user_id = %s", (user_id,))
    assert position == one(conn, "select max(position) from public.waitlist")
    calls = one(conn, "select count(*) from supabase_functions.http_request_calls")
    conn.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                 " values (%s, 'ARVANE', 'buy', 10)", (user_id,))
    assert one(conn, "select count(*) from supabase_functions.http_request_calls") == calls + 1
    conn.execute("delete from public.users where user_id = %s", (user_id,))
    result = one(conn, "select public.execute_buy_order(%s, 'ARVANE', 500, null)", (user_id,))
    assert result["success"] is True and Decimal(str(result["tokens_received"])) > 0
    assert one(conn, "select pv_amount > 0 from public.portfolio where user_id = %s"
               " and ticker = 'ARVANE'", (user_id,))


def test_processors_stop_at_failure_and_keep_cost_basis(conn: psycopg.Connection) -> None:
    """process_all_pending_orders stops at the first failure and reports failed = 0;
    process_order_batch sells a position to 0 and keeps its cost basis."""
    conn.execute("update public.queue set status = 'cancelled' where status = 'pending'")
    user_id, ticker, pv, basis = conn.execute(
        "select user_id, ticker, pv_amount, avg_cost_basis from public.portfolio"
        " where pv_amount > 1 order by id limit 1").fetchone()
    conn.execute("insert into public.queue (user_id, ticker, order_type, amount_pv, date) values"
                 " (%s, %s, 'sell', %s, now() - interval '2 minutes'),"
                 " (%s, %s, 'buy', 0.01, now() - interval '1 minute')",
                 (user_id, ticker, pv + 1, user_id, ticker))
    result = one(conn, "select public.process_all_pending_orders()")
    assert (result["total_processed"], result["successful"], result["failed"]) == (0, 0, 0)
    assert one(conn, "select count(*) from public.queue where status = 'pending'") == 1
    conn.execute("update public.queue set status = 'cancelled' where status = 'pending'")
    conn.execute("insert into public.queue (user_id, ticker, order_type, amount_pv)"
                 " values (%s, %s, 'sell', %s)", (user_id, ticker, pv))
    result = one(conn, "select public.process_order_batch(10)")
    assert (result["successful"], result["failed"]) == (1, 0)
    assert conn.execute("select pv_amount, avg_cost_basis from public.portfolio where user_id = %s"
                        " and ticker = %s", (user_id, ticker)).fetchone() == (0, basis)


def test_read_functions(conn: psycopg.Connection) -> None:
    """Prices, charts, stats and accounts as §5 describes them, on a ticker with known ticks."""
    conn.execute("insert into public.issuer_details (name, ticker) values ('Chart', 'CHART')")
    conn.execute("insert into public.issuer_trading (ticker, base_price, current_price)"
                 " values ('CHART', 2, 2)")
    # listing tick at now(); rewrite times to a known grid, then add two more ticks
    conn.execute("update public.price_history set timestamp = '2026-03-01 10:00+00'"
                 " where ticker = 'CHART'")
    conn.execute("insert into public.price_history (ticker, price, supply, timestamp) values"
                 " ('CHART', 2.5, 50, '2026-03-01 10:03+00'), ('CHART', 2.2, 20, '2026-03-01 10:07+00')")
    ohlc = conn.execute("select bucket, open, high, low, close, volume from public.get_ohlc_data("
                        "'CHART', '5 minutes'::interval, '2026-03-01 10:00+00', '2026-03-01 11:00+00')"
                        ).fetchall()
    assert [r[1:] for r in ohlc] == [(2, Decimal("2.5"), 2, Decimal("2.5"), 50),
                                     (Decimal("2.2"), Decimal("2.2"), Decimal("2.2"),
                                      Decimal("2.2"), 30)]
    chart = conn.execute("select bucket, close from public.get_chart_data_adaptive('CHART',"
                         " '2026-03-01 10:01+00', '2026-03-01 11:00+00')").fetchall()
    assert [r[1] for r in chart] == [2, Decimal("2.5"), Decimal("2.2")]  # carry-forward first
    assert conn.execute("select out_price, out_supply from public.get_latest_price('CHART')"
                        ).fetchone() == (Decimal("2.2"), 20)
    # previous = newest tick at or before now() - period, else the oldest tick
    assert conn.execute("select current_price, previous_price, price_change_percent"
                        " from public.get_price_change('CHART', now() - '2026-03-01 10:05+00')"
                        ).fetchone() == (Decimal("2.2"), Decimal("2.5"), Decimal("-12.00"))
    assert conn.execute("select previous_price, price_change_percent"
                        " from public.get_price_change('CHART', '5 years')").fetchone() == (
        2, Decimal("10.00"))
    conn.execute("select public.refresh_issuer_stats_cache()")
    assert one(conn, "select out_market_cap from public.get_issuer_stats('chart')") == 0
    caps = [r[0] for r in conn.execute("select out_market_cap from public.get_all_issuer_stats()")]
    assert caps == sorted(caps, reverse=True) and len(caps) == 12
    email = one(conn, "select email from auth.users order by id limit 1")
    assert one(conn, "select public.check_email_exists(upper(%s))", (email,)) is True
    as_api(conn, "anon")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("select public.get_user_id_by_email(%s)", (email,))


def test_waitlist_referral_moves_referrer_up_fifty(conn: psycopg.Connection) -> None:
    referrer, position, code = conn.execute(
        "select user_id, position, referral_code from public.waitlist order by position desc"
        " limit 1 offset 10").fetchone()
    newcomer = one(conn, "select user_id from public.waitlist order by position desc limit 1")
    result = one(conn, "select public.process_referral(%s, lower(%s))", (newcomer, code))
    assert result == {"success": True, "referrer_id": str(referrer), "new_position": position - 50}
    assert conn.execute("select position, referral_count from public.waitlist where user_id = %s",
                        (referrer,)).fetchone() == (position - 50, 1)
    positions = [r[0] for r in conn.execute("select position from public.waitlist order by 1")]
    assert positions == list(range(1, len(positions) + 1))
    neighbors = conn.execute('select "position", "isCurrentUser" from'
                             " public.get_waitlist_neighbors(%s, 2)", (referrer,)).fetchall()
    assert neighbors == [(position - 52, False), (position - 51, False), (position - 50, True),
                         (position - 49, False), (position - 48, False)]


# --- the built market (§10) ---------------------------------------------------------------

def test_market_shows_the_measured_data_facts(legacy: dict, conn: psycopg.Connection) -> None:
    s = legacy["summary"]
    assert s == summarize(conn) | {k: s[k] for k in ("net_deposits", "orders_placed",
                                                     "orders_refused", "injected")}
    assert s["users"] == 201 and s["listed_issuers"] == 11
    assert s["balances_over_6_decimals"] >= 150
    assert s["max_balance_scale"] > 500 and s["max_holding_scale"] > 500
    assert s["holdings_over_8_decimals"] == s["holdings"] > 500
    assert s["trades"] > 2000 and s["trade_pv_over_8_decimals"] > s["trades"] // 2
    assert 0 < s["trade_amounts_over_6_decimals"] < s["trades"]
    assert s["prices_inconsistent"] == 0
    assert s["tickers_supply_above_holdings"] >= 1 and s["tickers_supply_below_holdings"] >= 1
    assert s["pools_below_curve"] >= 1 and s["pools_above_curve"] >= 1
    assert one(conn, "select count(*) from public.issuer_trading as t where t.total_usdp"
               " - (t.base_price * t.current_supply + t.price_step * t.current_supply ^ 2 / 2)"
               " between 1 and 20") >= 1
    assert s["pending"] >= 260 and s["processing"] == 0
    assert s["failed"] > 0 and s["cancelled"] > 0
    assert 0 < s["trades_without_queue_id"] < s["trades"]
    assert s["details_without_trading"] >= 7
    # the overlapping phase broke conservation: balances + pools != net deposits
    assert s["sum_balances"] + s["sum_pools"] != s["net_deposits"]
    assert s["webhook_calls"] >= s["orders_placed"]
    assert one(conn, """
        select count(*) from public.queue as q
        where q.status = 'pending' and q.order_type = 'sell'
          and q.amount_pv > coalesce((select p.pv_amount from public.portfolio as p
                                      where p.user_id = q.user_id and p.ticker = q.ticker), 0)
    """) >= 1
    assert one(conn, "select max(n) from (select count(*) as n from public.queue"
               " where status = 'pending' group by user_id) as x") <= 5
    # ticks share the processing call's now()
    assert one(conn, "select count(*) from (select 1 from public.price_history"
               " group by ticker, timestamp having count(*) > 1) as x") > 0
    assert one(conn, "select count(*) from public.issuer_stats_cache") == 11


# --- bulk fabrication and checksum ---------------------------------------------------------

def test_bulk_fabrication_shapes() -> None:
    with throwaway_cluster(prefix="pauv-legacy-bulk-", push=False) as c:
        apply_legacy_schema(c)
        with c.connect("supabase_admin") as conn:
            result = fabricate_legacy_market_bulk(conn, users=3000, trades=30000, ticks=20000,
                                                  issuers=40)
            s = summarize(conn)
            dangling = one(conn, """
                select (select count(*) from public.portfolio as p
                        where not exists (select 1 from auth.users as u where u.id = p.user_id))
                     + (select count(*) from public.transactions as t
                        where not exists (select 1 from public.issuer_details as d
                                          where d.ticker = t.ticker))
                     + (select count(*) from public.users as u
                        where not exists (select 1 from public.waitlist as w
                                          where w.user_id = u.user_id))""")
    assert (result["users"], result["trades"], result["ticks"]) == (3000, 30000, 20000)
    assert dangling == 0
    assert s["max_balance_scale"] > 500 and s["max_holding_scale"] > 500
    assert s["tickers_supply_above_holdings"] > 0 and s["tickers_supply_below_holdings"] > 0
    assert s["pools_below_curve"] > 0 and s["prices_inconsistent"] == 0
    assert 0 < s["trades_without_queue_id"] < s["trades"]
    assert s["pending"] > 0 and s["details_without_trading"] > 0


@contextlib.contextmanager
def admin_session(cluster: Cluster) -> Iterator[psycopg.Connection]:
    with cluster.connect("supabase_admin") as c:
        try:
            yield c
        finally:
            c.rollback()


def test_checksum_is_stable_and_sees_one_row_grant_or_function(legacy: dict) -> None:
    cluster = legacy["cluster"]
    with admin_session(cluster) as conn:
        base = database_checksum(conn)
        assert database_checksum(conn) == base
        changes = [
            "update public.users set usdp_balance = usdp_balance + 0.000001"
            " where id = (select id from public.users order by id limit 1)",
            "grant select on public.rate_limit_log to supabase_auth_admin",
            "create or replace function public.is_admin() returns boolean language plpgsql"
            " stable security definer as $$ begin return false; end; $$",
            "update cron.job set schedule = '*/6 * * * *'"
            " where jobname = 'refresh-issuer-stats-cache'",
            "alter publication supabase_realtime drop table public.transactions",
        ]
        for change in changes:
            conn.execute("savepoint s")
            conn.execute(change)
            assert database_checksum(conn) != base, change
            conn.execute("rollback to savepoint s")
        assert database_checksum(conn) == base
