"""The Pauv app's calls (shared/legacy/PAUV_LEGACY_SCHEMA.md §9) keep their names, argument
names and types, result shapes and meaning on a fresh project and on an adopted one: one
contract test per call, each run on both, against a known market made inside the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction

import psycopg
import pytest

from conftest import act_as, act_as_owner, as_role, new_issuer, new_user
from curve_oracle import buy_quantity, dec_pv

# name -> (arguments as the catalog prints them, result as the catalog prints it, roles)
STATS_RESULT = (
    "TABLE(out_ticker text, out_current_price numeric, out_price_1h_change numeric,"
    " out_price_24h_change numeric, out_price_7d_change numeric, out_volume_24h numeric,"
    " out_holders integer, out_market_cap numeric, out_circulating_supply numeric,"
    " out_cached_at timestamp with time zone)"
)
CHART_RESULT = (
    "TABLE(bucket timestamp with time zone, open numeric, high numeric, low numeric,"
    " close numeric, volume numeric, avg_price numeric)"
)
READERS = {"anon", "authenticated", "service_role"}
CONTRACT = {
    "process_all_pending_orders": (
        "p_max_orders integer DEFAULT 1000, p_max_seconds numeric DEFAULT 5,"
        " p_now timestamp with time zone DEFAULT now()", "jsonb", {"service_role"}),
    "process_order_batch": ("p_batch_size integer DEFAULT 50", "jsonb", {"service_role"}),
    "increment_user_balance": ("p_user_id uuid, p_amount numeric", "numeric", {"service_role"}),
    "refresh_issuer_stats_cache": (
        "p_now timestamp with time zone DEFAULT now()", "integer", {"service_role"}),
    "get_all_issuer_stats": ("", STATS_RESULT, READERS),
    "get_issuer_stats": ("p_ticker text", STATS_RESULT, READERS),
    "get_price_change": (
        "p_ticker text, p_period interval DEFAULT '24:00:00'::interval",
        "TABLE(current_price numeric, previous_price numeric, price_change numeric,"
        " price_change_percent numeric)", READERS),
    "get_latest_price": (
        "p_ticker text", "TABLE(out_ticker text, out_price numeric, out_supply numeric,"
        " out_timestamp timestamp with time zone)", READERS),
    "get_chart_data_adaptive": (
        "p_ticker text, p_start_time timestamp with time zone, p_end_time timestamp with time"
        " zone, p_max_points integer DEFAULT 200", CHART_RESULT, READERS),
}


@pytest.fixture(params=["fresh", "adopted"])
def app_db(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection]:
    """A connection as 'postgres' in a transaction rolled back at the end, on a fresh
    project (the session's cluster) or on the adopted legacy database."""
    if request.param == "fresh":
        cluster = request.getfixturevalue("cluster")
    else:
        adopted = request.getfixturevalue("adopted_legacy")
        assert adopted["adopt"].returncode == 0, adopted["adopt"].stdout + adopted["adopt"].stderr
        cluster = adopted["cluster"]
    conn = cluster.connect()
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def known_market(conn: psycopg.Connection) -> tuple[uuid.UUID, str, Decimal]:
    """One new issuer (base 1, step 0.01) in which one user bought for 100 USDP just now,
    through the app's own INSERT shape, drained by the engine. Returns user, ticker, PV."""
    ticker = "CT" + uuid.uuid4().hex[:8].upper()
    new_issuer(conn, ticker)
    user_id = new_user(conn, 1000)
    with as_role(conn, "service_role"):
        conn.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp,"
                     " amount_pv, status) values (%s, %s, 'buy', 100, 0, 'pending')",
                     (user_id, ticker))
        conn.execute("select public.process_all_pending_orders()")
    pv = dec_pv(buy_quantity(Fraction(1), Fraction(1, 100), Fraction(100)))
    return user_id, ticker, pv


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_signature_result_and_privileges(app_db: psycopg.Connection, name: str) -> None:
    args, result, roles = CONTRACT[name]
    found = app_db.execute(
        "select pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.oid::regprocedure::text"
        " from pg_proc as p where p.proname = %s and p.pronamespace = 'public'::regnamespace",
        (name,)).fetchall()
    assert len(found) == 1, found
    assert found[0][:2] == (args, result)
    for role in ("anon", "authenticated", "service_role"):
        allowed = app_db.execute("select has_function_privilege(%s, %s, 'execute')",
                                 (role, found[0][2])).fetchone()[0]
        assert allowed == (role in roles), (name, role)


def test_stats_price_change_and_latest_price(app_db: psycopg.Connection) -> None:
    user_id, ticker, pv = known_market(app_db)
    price = 1 + Decimal("0.01") * pv
    with as_role(app_db, "service_role"):
        app_db.execute("select public.refresh_issuer_stats_cache()")
    act_as(app_db, "anon")
    stats = app_db.execute("select * from public.get_all_issuer_stats() where out_ticker = %s",
                           (ticker,)).fetchall()
    assert len(stats) == 1
    row = stats[0]
    assert row[1] == price and row[5] == 100 and row[6] == 1 and row[7] == 100 and row[8] == pv
    assert row[2] == row[3] == row[4] == round((price - 1) * 100, 2)
    assert app_db.execute("select * from public.get_issuer_stats(%s)", (ticker.lower(),)
                          ).fetchall() == stats
    change = app_db.execute("select * from public.get_price_change(%s, '1 hour')", (ticker,)
                            ).fetchone()
    assert change == (price, Decimal("1.00"), price - 1, round((price - 1) * 100, 2))
    latest = app_db.execute("select out_ticker, out_price, out_supply from public.get_latest_price(%s)",
                            (ticker,)).fetchone()
    assert latest == (ticker, price, pv)
    act_as_owner(app_db)


def test_chart_data_adaptive_points_and_candles(app_db: psycopg.Connection) -> None:
    user_id, ticker, pv = known_market(app_db)
    price = 1 + Decimal("0.01") * pv
    act_as(app_db, "anon")
    points = app_db.execute(
        "select open, high, low, close, volume from public.get_chart_data_adaptive("
        "%s, now() - interval '1 hour', now() + interval '1 minute')", (ticker,)).fetchall()
    # The carry-forward point (the listing price), then the one tick.
    assert points == [(Decimal("1.00"),) * 4 + (0,), (price,) * 4 + (0,)]
    act_as_owner(app_db)
    with as_role(app_db, "service_role"):
        app_db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp,"
                       " amount_pv, status) values (%s, %s, 'buy', 10, 0, 'pending')",
                       (user_id, ticker))
        app_db.execute("select public.process_all_pending_orders()")
    price = app_db.execute("select current_price from public.issuer_trading where ticker = %s",
                           (ticker,)).fetchone()[0]
    act_as(app_db, "anon")
    candles = app_db.execute(
        "select close, volume from public.get_chart_data_adaptive("
        "%s, now() - interval '1 hour', now() + interval '1 minute', 1)", (ticker,)).fetchall()
    # More ticks (2) than points (1): the carry point, then candles closing at the price,
    # their USDP volume the two trades'.
    assert candles[0] == (Decimal("1.00"), 0)
    assert candles[-1][0] == price and sum(c[1] for c in candles[1:]) == 110
    act_as_owner(app_db)


def test_process_order_batch_drains_through_the_engine(app_db: psycopg.Connection) -> None:
    user_id, ticker, pv = known_market(app_db)
    with as_role(app_db, "service_role"):
        app_db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp,"
                       " amount_pv, status) values (%s, %s, 'sell', 0, %s, 'pending'),"
                       " (%s, %s, 'sell', 0, %s, 'pending')",
                       (user_id, ticker, (pv / 2).quantize(Decimal('1e-8')), user_id, ticker, pv))
        out = app_db.execute("select public.process_order_batch(10)").fetchone()[0]
    assert (out["processed"], out["successful"], out["failed"]) == (2, 1, 1)
    assert [r["success"] for r in out["results"]] == [True, False]
    assert out["results"][0]["transaction_id"] > 0 and out["results"][0]["usdp_received"] > 0
    assert "insufficient" in out["results"][1]["error"]
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        with app_db.transaction():
            app_db.execute("select public.process_order_batch(0)")


def test_increment_user_balance_moves_money_through_the_ledger(app_db: psycopg.Connection) -> None:
    user_id = new_user(app_db, 10)
    with as_role(app_db, "service_role"):
        assert app_db.execute("select public.increment_user_balance(%s, 25.5)", (user_id,)
                              ).fetchone() == (Decimal("35.5"),)
        balance = app_db.execute("select usdp_balance from public.users where user_id = %s",
                                 (user_id,)).fetchone()[0]
        assert balance == Decimal("35.5")
        assert app_db.execute("select public.increment_user_balance(%s, -5.5)", (user_id,)
                              ).fetchone()[0] == Decimal("30")
        assert app_db.execute("select public.increment_user_balance(%s, 1)", (uuid.uuid4(),)
                              ).fetchone() == (None,)
        for bad, sqlstate in (("-31", "PA001"), ("0.0000001", "22023"), ("NaN", "22023")):
            with pytest.raises(psycopg.Error) as refused:
                with app_db.transaction():
                    app_db.execute("select public.increment_user_balance(%s, %s::numeric)",
                                   (user_id, bad))
            assert refused.value.sqlstate == sqlstate, bad
    movements = app_db.execute("select amount from pauv.usdp_movements where user_id = %s"
                               " order by id", (user_id,)).fetchall()
    assert movements == [(10,), (Decimal("25.5"),), (Decimal("-5.5"),)]
    for role in ("anon", "authenticated"):
        act_as(app_db, role, user_id)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with app_db.transaction():
                app_db.execute("select public.increment_user_balance(%s, 1000)", (user_id,))
        act_as_owner(app_db)
