"""Adopting the Pauv app's live database in place (docs/adoption.md): a legacy database
built from the facts document and filled through the legacy schema's own rules, then
`make adopt DB_URL=...` (the real CLI), then row-by-row checks of what survived, what was
adjusted and why, what was replaced, and that the market works as on a fresh project."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
import decimal
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

import psycopg
import pytest

from conftest import (
    NON_MARKET_TABLES, act_as, act_as_owner, audit, drain, make_adopt, rows, table_digest,
)
from harness import MIGRATIONS, throwaway_cluster
from legacy import apply_legacy_schema
from legacy.checksum import database_checksum

# Curve values of 8-decimal supplies need more than Python's default 28 digits to be exact.
decimal.getcontext().prec = 100

JOBS = ("refresh-issuer-stats-cache", "hourly-price-snapshot", "cleanup-old-queue-entries",
        "process-pending-orders-sweeper", "purge-cron-job-run-details")


def plain_push(cluster: Cluster) -> subprocess.CompletedProcess:
    return cluster.push_migrations()


def ceil_to(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_CEILING)


def trunc_to(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


@pytest.fixture(scope="module")
def legacy(adopted_legacy: dict) -> dict:
    return adopted_legacy


@pytest.fixture
def adopted(legacy: dict) -> Iterator[psycopg.Connection]:
    assert legacy["adopt"].returncode == 0, legacy["adopt"].stdout + legacy["adopt"].stderr
    conn = legacy["cluster"].connect()
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def test_the_legacy_market_has_the_hard_cases(legacy: dict) -> None:
    injected = legacy["market"]["injected"]
    assert set(injected) >= {"balance_over_500_decimals", "supply_above_holdings",
                             "supply_below_holdings", "pool_below_curve",
                             "pool_above_curve_by_usdp", "trades_without_queue_id"}
    before = legacy["before"]
    assert any(-b[0].as_tuple().exponent > 500 for b in before["users"].values())
    assert any(o[3] == "pending" for o in before["orders"].values())
    assert any(t[0] is None for t in before["trades"].values())


def test_make_adopt_pushes_and_aligns_the_history(legacy: dict, adopted: psycopg.Connection) -> None:
    out = legacy["adopt"].stdout
    assert "Remote database is up to date" in out.splitlines()[-1]
    versions = {r[0] for r in rows(adopted, "select version from supabase_migrations.schema_migrations")}
    assert versions == {p.name.split("_", 1)[0] for p in MIGRATIONS.glob("*.sql")}
    again = plain_push(legacy["cluster"])
    assert again.returncode == 0 and "Remote database is up to date" in again.stdout + again.stderr
    summary = adopted.execute("select summary from pauv.legacy_adoption").fetchone()[0]
    assert summary["users"] == legacy["before"]["auth_users"]


def test_the_audit_is_clean_right_after_adoption(adopted: psycopg.Connection) -> None:
    assert audit(adopted) == []


def test_every_balance_survives_rounded_down_and_recorded(legacy: dict, adopted: psycopg.Connection) -> None:
    after = dict(rows(adopted, "select user_id, usdp_balance from public.users"))
    recorded = {r[0]: (r[1], r[2]) for r in rows(adopted, "select user_id, before_value, after_value"
                " from pauv.adoption_adjustments where subject = 'user' and column_name = 'usdp_balance'"
                " and before_value is not null")}
    changed = 0
    for user_id, (balance, username, row_id, terms) in legacy["before"]["users"].items():
        assert after[user_id] == trunc_to(balance, 6)
        if after[user_id] != balance:
            changed += 1
            assert recorded[user_id] == (balance, after[user_id])
        else:
            assert user_id not in recorded
    assert changed == len(recorded) > 0
    same = rows(adopted, "select count(*) from public.users as u where (u.user_id, u.id,"
                " u.username) in (select l.user_id, l.id, l.username from pauv_legacy.users as l)")
    assert same[0][0] == len(legacy["before"]["users"])
    openings = adopted.execute("select coalesce(sum(amount), 0) from pauv.usdp_movements"
                               " where kind = 'opening_balance'").fetchone()[0]
    assert openings == sum(after.values())


def test_holdings_supply_and_pools_are_converted_in_the_pools_favour(legacy: dict, adopted: psycopg.Connection) -> None:
    holdings = {(r[0], r[1]): (r[2], r[3]) for r in rows(adopted, "select user_id, ticker,"
                " pv_amount, avg_cost_basis from public.portfolio")}
    assert len(holdings) == len(legacy["before"]["holdings"])
    for key, (pv, basis, _id) in legacy["before"]["holdings"].items():
        assert holdings[key][0] == trunc_to(pv, 8)
        assert holdings[key][1] == (0 if holdings[key][0] == 0 else basis.quantize(Decimal("1e-12")))
    issuers = {r[0]: r[1:] for r in rows(adopted, "select ticker, current_supply, total_usdp,"
               " current_price, base_price, price_step from public.issuer_trading")}
    pools = {r[0]: r[1:] for r in rows(adopted, "select ticker, surplus from pauv.adopted_pools")}
    recorded_pool = {r[0]: (r[1], r[2], r[3]) for r in rows(adopted, "select ticker, before_value,"
                     " after_value, reason from pauv.adoption_adjustments where subject = 'issuer'"
                     " and column_name = 'total_usdp'")}
    topped_up = 0
    for ticker, (b, s, legacy_supply, legacy_pool, _id) in legacy["before"]["issuers"].items():
        supply, pool, price, _, _ = issuers[ticker]
        assert supply == sum(v[0] for k, v in holdings.items() if k[1] == ticker)
        assert price == b + s * supply
        curve = b * supply + s * supply * supply / 2
        assert pool == max(ceil_to(legacy_pool, 6), ceil_to(curve, 6))
        assert pools[ticker][0] == pool - curve
        if pool != legacy_pool:
            assert recorded_pool[ticker][:2] == (legacy_pool, pool)
            topped_up += "topped up" in recorded_pool[ticker][2]
    assert topped_up >= 1
    drift = rows(adopted, "select count(*) from pauv.adoption_adjustments where subject = 'issuer'"
                 " and column_name = 'current_supply' and reason like '%disagreed%'")
    assert drift[0][0] >= 2
    openings = dict(rows(adopted, "select ticker, amount from pauv.usdp_movements"
                         " where kind = 'opening_pool'"))
    assert openings == {t: v[1] for t, v in issuers.items() if v[1] > 0}


def test_orders_trades_and_ticks_survive_row_by_row(legacy: dict, adopted: psycopg.Connection) -> None:
    before = legacy["before"]
    orders = {r[0]: r[1:] for r in rows(adopted, "select legacy_id, id, user_id, ticker, order_type,"
              " status, amount_usdp, amount_pv, date, error_message, processed_at from public.queue")}
    assert set(orders) == set(before["orders"])
    for legacy_id, (user_id, ticker, side, status, usdp, pv, date, _) in before["orders"].items():
        new = orders[legacy_id]
        assert new[1:5] == (user_id, ticker, side, status) and new[7] == date
        if status == "pending":
            assert (new[5], new[6]) == ((trunc_to(usdp, 6), pv) if side == "buy" else (usdp, trunc_to(pv, 8)))
            assert new[9] is None
        else:
            assert new[9] is not None
        assert (new[8] is not None) == (status == "failed")
    # FIFO order of the legacy queue is kept by the new ids.
    by_date = sorted(before["orders"], key=lambda k: (before["orders"][k][6], before["orders"][k][7], str(k)))
    ids = [orders[k][0] for k in by_date]
    assert ids == sorted(ids)

    trades = {r[0]: r[1:] for r in rows(adopted, "select x.legacy_id, q.legacy_id, x.user_id,"
              " x.ticker, x.amount_usdp, x.pv_traded, x.date from public.transactions as x"
              " left join public.queue as q on q.id = x.queue_id")}
    assert set(trades) == set(before["trades"])
    for legacy_id, (queue_id, user_id, ticker, usdp, pv, date) in before["trades"].items():
        assert trades[legacy_id] == (queue_id, user_id, ticker, ceil_to(usdp, 6), ceil_to(pv, 8), date)
    ticks = rows(adopted, "select id, ticker, timestamp from public.price_history order by id")
    assert ticks == before["ticks"]
    details = rows(adopted, "select id, ticker, name, bio, headline, tag, photo, user_id,"
                   " is_hidden from public.issuer_details order by id")
    assert details == before["details"]


def test_other_tables_and_their_rows_are_untouched(legacy: dict, adopted: psycopg.Connection) -> None:
    with legacy["cluster"].connect("supabase_admin") as conn:
        assert {t: table_digest(conn, t) for t in NON_MARKET_TABLES} == legacy["before"]["non_market"]


def test_the_guides_calls_resolve_to_exactly_one_function(adopted: psycopg.Connection) -> None:
    for name in ("process_all_pending_orders", "refresh_issuer_stats_cache",
                 "process_next_queue_order", "get_ohlc_data", "increment_user_balance"):
        count = adopted.execute("select count(*) from pg_proc where proname = %s"
                                " and pronamespace = 'public'::regnamespace", (name,)).fetchone()[0]
        assert count == 1, name
    adopted.execute("select refresh_issuer_stats_cache()")
    assert adopted.execute("select process_next_queue_order() ? 'processed'").fetchone()[0]


def test_each_job_exists_once_and_the_apps_own_job_stays(adopted: psycopg.Connection) -> None:
    jobs = rows(adopted, "select jobname, count(*), min(command) from cron.job group by jobname")
    counts = {j[0]: j[1] for j in jobs}
    assert all(counts[name] == 1 for name in JOBS)
    assert counts["cleanup-rate-limit-log"] == 1
    commands = {j[0]: j[2] for j in jobs}
    assert commands["hourly-price-snapshot"] == "select public.snapshot_hourly_prices()"
    # Scheduled, but none has fired here: these tests read the state the adoption left
    # (a sweeper run at a minute's turn would execute the pending orders first).
    assert rows(adopted, "select count(*) filter (where active) from cron.job") == [(0,)]
    assert rows(adopted, "select count(*) from cron.job_run_details") == [(0,)]


def test_no_legacy_trigger_writes_market_tables_behind_the_engine(adopted: psycopg.Connection) -> None:
    triggers = rows(adopted, "select tgrelid::regclass::text, tgname from pg_trigger"
                    " where not tgisinternal and tgrelid in ('public.users'::regclass,"
                    " 'public.issuer_details'::regclass, 'public.issuer_trading'::regclass,"
                    " 'public.portfolio'::regclass, 'public.queue'::regclass,"
                    " 'public.transactions'::regclass, 'public.price_history'::regclass)"
                    " order by 1, 2")
    assert triggers == [
        ("issuer_details", "issuer_details_set_updated_at"),
        ("issuer_details", "trg_create_issuer_links_on_details_insert"),
        ("issuer_trading", "issuer_trading_keep_trade_history"),
        ("issuer_trading", "issuer_trading_keep_trade_history_key"),
        ("issuer_trading", "issuer_trading_keep_trade_holdings"),
        ("issuer_trading", "issuer_trading_keep_trade_holdings_key"),
        ("issuer_trading", "issuer_trading_set_updated_at"),
        ("portfolio", "portfolio_check_references_on_insert"),
        ("portfolio", "portfolio_check_references_on_new_key"),
        ("portfolio", "portfolio_set_updated_at"),
        ("price_history", "price_history_check_references_on_insert"),
        ("price_history", "price_history_check_references_on_update"),
        ("queue", "process-queue-webhook"),
        ("queue", "queue_admit_order"),
        ("queue", "queue_broadcast_order_fills"),
        ("queue", "queue_set_updated_at"),
        ("transactions", "transactions_check_references_on_insert"),
        ("transactions", "transactions_check_references_on_update"),
        ("transactions", "transactions_keep_trade_history"),
        ("transactions", "transactions_keep_trade_history_key"),
        ("users", "on_user_created_add_to_waitlist"),
        ("users", "users_keep_trade_history"),
        ("users", "users_keep_trade_history_key"),
        ("users", "users_keep_trade_holdings"),
        ("users", "users_keep_trade_holdings_key"),
        ("users", "users_set_updated_at"),
    ]
    sign_up = rows(adopted, "select tgname, tgfoid::regproc::text from pg_trigger"
                   " where tgrelid = 'auth.users'::regclass and not tgisinternal")
    assert sign_up == [("on_auth_user_created", "pauv.create_user_row")]
    gone = rows(adopted, "select proname from pg_proc where pronamespace = 'public'::regnamespace"
                " and proname in ('record_price_history', 'execute_buy_order', 'execute_sell_order',"
                " 'protect_financial_columns', 'handle_new_user')")
    assert gone == []


def test_the_apps_triggers_keep_working_on_adopted_tables(adopted: psycopg.Connection) -> None:
    user_id = uuid.uuid4()
    adopted.execute("insert into auth.users (id, email) values (%s, 'new@example.test')", (user_id,))
    assert adopted.execute("select usdp_balance from public.users where user_id = %s",
                           (user_id,)).fetchone() == (0,)
    assert adopted.execute("select count(*) from public.waitlist where user_id = %s",
                           (user_id,)).fetchone() == (1,)
    adopted.execute("insert into public.issuer_details (ticker, name) values ('NEWONE', 'New One')")
    assert adopted.execute("select count(*) from public.issuer_links where ticker = 'NEWONE'"
                           ).fetchone() == (1,)


def test_legacy_security_holes_are_closed(adopted: psycopg.Connection) -> None:
    for fn in ("public.increment_user_balance(uuid, numeric)", "public.set_admin_claim(uuid, boolean)"):
        for role in ("anon", "authenticated"):
            assert adopted.execute("select has_function_privilege(%s, %s, 'execute')",
                                   (role, fn)).fetchone() == (False,), (fn, role)
    unpinned = rows(adopted, "select oid::regprocedure::text from pg_proc"
                    " where pronamespace = 'public'::regnamespace and prosecdef"
                    " and not exists (select from unnest(proconfig) as c where c like 'search_path=%')")
    assert unpinned == []
    act_as(adopted, "anon")
    assert adopted.execute("select count(*) from public.issuer_trading").fetchone()[0] > 0
    for table in ("public.users", "public.transactions", "public.portfolio", "public.queue"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with adopted.transaction():
                adopted.execute(f"select count(*) from {table}")
    act_as_owner(adopted)
    # No legacy policy or grant is left on the market tables: only this package's.
    policies = rows(adopted, "select tablename, policyname from pg_policies where schemaname = 'public'"
                    " and tablename in ('users', 'transactions', 'queue', 'portfolio')"
                    " order by 1, 2")
    assert policies == [("portfolio", "portfolio_select_own"), ("queue", "queue_select_own"),
                        ("transactions", "transactions_select_own"), ("users", "users_select_own")]
    archive = rows(adopted, "select count(*) from information_schema.role_table_grants"
                   " where table_schema = 'pauv_legacy' and grantee in ('anon', 'authenticated', 'service_role')")
    assert archive == [(0,)]


def test_adopted_pending_orders_execute_fifo_and_money_stays_exact(legacy: dict) -> None:
    cluster = legacy["cluster"]
    assert legacy["adopt"].returncode == 0
    with cluster.connect() as conn:
        pending = conn.execute("select count(*) from public.queue where status = 'pending'"
                               " and legacy_id is not null").fetchone()[0]
        assert pending > 0
        totals = drain(conn)
        conn.commit()
        assert totals["total_processed"] >= pending and totals["failed"] >= 1
        left = conn.execute("select count(*) from public.queue where legacy_id is not null"
                            " and status = 'pending'").fetchone()[0]
        assert left == 0
        assert audit(conn) == []
        # What a signed-in adopted user can do, as on a fresh project.
        user_id, = conn.execute("select user_id from public.users where usdp_balance >= 5"
                                " order by user_id limit 1").fetchone()
        ticker, = conn.execute("select min(ticker) from public.issuer_trading").fetchone()
        act_as(conn, "authenticated", user_id)
        order = conn.execute("select id, status from public.place_order(%s, 'buy', 5)",
                             (ticker,)).fetchone()
        act_as_owner(conn)
        act_as(conn, "service_role")
        balance = conn.execute("select public.increment_user_balance(%s, 12.5)", (user_id,)).fetchone()[0]
        act_as_owner(conn)
        conn.commit()
        assert order[1] == "pending" and balance is not None
        drain(conn)
        conn.commit()
        assert conn.execute("select status from public.queue where id = %s", (order[0],)).fetchone() == ("completed",)
        assert audit(conn) == []


@pytest.fixture(scope="module")
def refused() -> Iterator[dict]:
    """A legacy database with rows adoption cannot convert, through `make adopt`."""
    with throwaway_cluster(prefix="pauv-refuse-", push=False) as cluster:
        apply_legacy_schema(cluster)
        with cluster.connect() as conn:
            user_id = uuid.uuid4()
            conn.execute("insert into auth.users (id, email) values (%s, 'x@example.test')", (user_id,))
            conn.execute("insert into public.issuer_details (ticker, name) values ('bad-ticker', 'Bad')")
            conn.execute("insert into public.issuer_trading (ticker) values ('JXSTERLING')")
            conn.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv,"
                         " status) values (%s, 'JXSTERLING', 'buy', 10, 0, 'processing')", (user_id,))
            conn.commit()
        with cluster.connect("supabase_admin") as conn:
            before = database_checksum(conn)
        result = make_adopt(cluster)
        with cluster.connect("supabase_admin") as conn:
            after = database_checksum(conn)
        yield {"before": before, "after": after, "result": result}


def test_the_preflight_refuses_naming_the_rows_and_changes_nothing(refused: dict) -> None:
    result = refused["result"]
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Pauv adoption refused, nothing was changed" in output
    assert "issuer_details bad-ticker" in output
    assert "a legacy processor is running" in output
    assert refused["after"] == refused["before"]
