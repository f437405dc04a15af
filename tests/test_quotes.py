"""Quotes (issue 16 item 2): `quote_order` says what an order would receive if it executed
next; executed alone, the order's trade equals its quote exactly."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import BAD_ORDER_AMOUNTS, act_as_owner, as_role, new_issuer, new_user, signed_in

QUOTE = ("select receive, avg_price, start_price, end_price, price_impact_pct"
         " from public.quote_order(%s, %s, %s)")


def quote(conn: psycopg.Connection, ticker: str, order_type: str, amount) -> tuple:
    return conn.execute(QUOTE, (ticker, order_type, amount)).fetchone()


def test_known_quote_of_a_100_usdp_buy_at_the_default_curve(db) -> None:
    new_issuer(db, "QTE")
    # n = (sqrt(1 + 2*0.01*100) - 1) / 0.01 = 73.2050807568... -> 73.20508075
    assert quote(db, "QTE", "buy", Decimal(100)) == (
        Decimal("73.20508075"),
        Decimal("1.366025403913"),   # 100 / 73.20508075, to 12 decimals
        Decimal("1.00"),
        Decimal("1.7320508075"),     # 1 + 0.01 * 73.20508075
        Decimal("73.205081"),        # +73.2050807...%
    )


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_everyone_may_quote(db, role) -> None:
    new_issuer(db, "QTE")
    with as_role(db, role):
        assert quote(db, "QTE", "buy", Decimal(1))[0] == Decimal("0.99504938")  # (sqrt(1.02) - 1) / 0.01, floored to 1e-8


@pytest.mark.parametrize(
    ("order_type", "amount", "sqlstate", "message"),
    BAD_ORDER_AMOUNTS + [
        ("buy", None, "22023", "finite"),
        ("sell", "5", "22023", "only 0 PV exist"),
    ],
)
def test_bad_quotes_are_refused_like_placements(db, order_type, amount, sqlstate, message) -> None:
    new_issuer(db, "QTE")
    with as_role(db, "anon"):
        with pytest.raises(psycopg.Error) as err:
            quote(db, "QTE", order_type, None if amount is None else Decimal(amount))
    assert (err.value.sqlstate, message in str(err.value)) == (sqlstate, True), str(err.value)


def test_an_unknown_ticker_is_refused(db) -> None:
    with pytest.raises(psycopg.Error) as err:
        quote(db, "NOPE", "buy", Decimal(10))
    assert err.value.sqlstate == "P0002"


def test_a_buy_too_small_for_one_token_unit_is_refused(db) -> None:
    new_issuer(db, "QTE", base_price="1000000", price_step="1")
    with pytest.raises(psycopg.Error) as err:
        quote(db, "QTE", "buy", Decimal("0.01"))
    assert (err.value.sqlstate, "amount too small" in str(err.value)) == ("22023", True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("50"), places=2),
       step=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1"), places=6),
       opening=st.decimals(min_value=Decimal("0"), max_value=Decimal("5000"), places=6),
       order_type=st.sampled_from(["buy", "sell"]),
       usdp=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=6),
       share=st.fractions(min_value=0, max_value=1))
def test_an_order_executed_alone_receives_exactly_its_quote(db, base, step, opening, order_type,
                                                           usdp, share) -> None:
    db.execute("savepoint example")
    try:
        new_issuer(db, "QPROP", base_price=base, price_step=step)
        trader = new_user(db, balance=20000)

        def execute(order_type: str, amount: Decimal) -> tuple:
            with signed_in(db, trader):
                order_id = db.execute("select id from public.place_order('QPROP', %s, %s)",
                                      (order_type, amount)).fetchone()[0]
            db.execute("select public.process_all_pending_orders()")
            return db.execute(
                "select q.status, t.amount_usdp, t.pv_traded, t.avg_price_paid, t.start_price,"
                " t.end_price from public.queue as q"
                " left join public.transactions as t on t.queue_id = q.id where q.id = %s",
                (order_id,),
            ).fetchone()

        if opening >= Decimal("0.01"):
            assert execute("buy", opening)[0] == "completed"
        if order_type == "buy":
            amount = usdp
        else:
            held = db.execute("select coalesce(sum(pv_amount), 0) from public.portfolio"
                              " where ticker = 'QPROP'").fetchone()[0]
            amount = (held * Decimal(share.numerator) / Decimal(share.denominator)).quantize(
                Decimal("0.00000001"), rounding="ROUND_DOWN")
            if amount < Decimal("0.01"):
                return
        db.execute("savepoint quote")
        try:
            with as_role(db, "anon"):
                quoted = quote(db, "QPROP", order_type, amount)
        except psycopg.errors.InvalidParameterValue as refused:
            # Only "too small" is refused here; the engine must then fail it too.
            assert "amount too small" in str(refused)
            quoted = None
            db.execute("rollback to savepoint quote")
        act_as_owner(db)
        status, usdp_moved, pv, avg, start, end = execute(order_type, amount)
        if quoted is None:
            assert (status, pv) == ("failed", None)
            return
        receive, q_avg, q_start, q_end, impact = quoted
        assert status == "completed"
        assert (pv if order_type == "buy" else usdp_moved) == receive
        assert (usdp_moved if order_type == "buy" else pv) == amount
        assert (avg, start, end) == (q_avg, q_start, q_end)
        assert db.execute("select current_price from public.issuer_trading"
                          " where ticker = 'QPROP'").fetchone()[0] == q_end
        assert impact == round((q_end - q_start) / q_start * 100, 6)
    finally:
        db.execute("rollback to savepoint example")
