"""Protecting traders (issue 16 items 1 and 3): a slippage limit (`min_receive`) that fails
an order, moving nothing, when execution would give less; and `close_position`, which sells
a whole holding even below the 0.01 PV minimum and leaves exactly 0 with cost basis 0."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import act_as, act_as_owner, drain, money_state, new_issuer, new_user, signed_in
from test_order_intake import LEVELS, race

PV_UNIT = Decimal("0.00000001")
USDP_UNIT = Decimal("0.000001")
# On the default curve (base 1, step 0.01) from supply 0: what 100 USDP buys.
PV_FOR_100 = Decimal("73.20508075")


def place(conn, user, ticker, order_type, amount, min_receive=None) -> int:
    with signed_in(conn, user):
        return conn.execute(
            "select id from public.place_order(%s, %s, %s, p_min_receive => %s)",
            (ticker, order_type, Decimal(amount), min_receive),
        ).fetchone()[0]


def close(conn, user, ticker, min_receive=None, client_order_id=None) -> tuple:
    with signed_in(conn, user):
        return conn.execute(
            "select id, order_type, amount_pv, amount_usdp, closes_position, min_receive"
            " from public.close_position(%s, %s, %s)",
            (ticker, client_order_id, min_receive),
        ).fetchone()


def outcome(conn, order_id) -> tuple:
    """(status, error_message, PV traded, USDP moved) of an order after processing."""
    return conn.execute(
        "select q.status, q.error_message, t.pv_traded, t.amount_usdp from public.queue as q"
        " left join public.transactions as t on t.queue_id = q.id where q.id = %s",
        (order_id,),
    ).fetchone()


def position(conn, user, ticker) -> tuple:
    return conn.execute(
        "select pv_amount, avg_cost_basis from public.portfolio where user_id = %s and ticker = %s",
        (user, ticker),
    ).fetchone()


def holder(conn, ticker, usdp="100") -> object:
    """A user who bought `usdp` of `ticker` (executed) and has 1,000 USDP left over."""
    user = new_user(conn, balance=Decimal(usdp) + 1000)
    place(conn, user, ticker, "buy", usdp)
    drain(conn)
    return user


def fails_moving_nothing(conn, order_id, error_message: str) -> None:
    """Drain; the order fails with exactly this reason, and no money or token moved."""
    before = money_state(conn)
    drain(conn)
    assert outcome(conn, order_id) == ("failed", error_message, None, None)
    assert money_state(conn) == before


def error_of(conn, sql, *args) -> tuple[str, str]:
    conn.execute("savepoint attempt")
    with pytest.raises(psycopg.Error) as err:
        conn.execute(sql, args)
    conn.execute("rollback to savepoint attempt")
    act_as_owner(conn)
    return err.value.sqlstate, str(err.value)


# --- slippage limit ------------------------------------------------------------------------


def test_a_buy_at_exactly_its_limit_completes_and_one_unit_more_fails(db) -> None:
    new_issuer(db, "SLP")
    new_issuer(db, "SLQ")
    user = new_user(db, balance=1000)
    at_limit = place(db, user, "SLP", "buy", 100, min_receive=PV_FOR_100)
    over = place(db, user, "SLQ", "buy", 100, min_receive=PV_FOR_100 + PV_UNIT)
    drain(db)
    assert outcome(db, at_limit) == ("completed", None, PV_FOR_100, Decimal(100))
    assert outcome(db, over) == (
        "failed",
        "price moved past the limit: the buy would receive 73.20508075 PV,"
        " min_receive is 73.20508076 PV",
        None, None,
    )
    assert position(db, user, "SLQ") is None
    assert db.execute("select usdp_balance from public.users where user_id = %s",
                      (user,)).fetchone()[0] == Decimal(900)


def test_a_sell_at_exactly_its_limit_completes_and_one_unit_more_fails(db) -> None:
    new_issuer(db, "SLP")
    user = holder(db, "SLP")
    # Selling 10 PV at supply 73.20508075: p = 1.7320508075,
    # payout = 10 * 1.7320508075 - 0.01 * 100 / 2 = 16.820508075 -> 16.820508 (floored).
    over = place(db, user, "SLP", "sell", 10, min_receive=Decimal("16.820509"))
    drain(db)
    assert outcome(db, over) == (
        "failed",
        "price moved past the limit: the sell would pay 16.820508 USDP, min_receive is 16.820509 USDP",
        None, None,
    )
    at_limit = place(db, user, "SLP", "sell", 10, min_receive=Decimal("16.820508"))
    drain(db)
    assert outcome(db, at_limit) == ("completed", None, Decimal(10), Decimal("16.820508"))


def test_an_order_the_price_moved_away_from_fails_and_moves_nothing(db) -> None:
    new_issuer(db, "SLP")
    early, late = new_user(db, balance=1000), new_user(db, balance=1000)
    # The quote said 73.20508075 PV; an earlier buy in the queue moves the price first.
    first = place(db, early, "SLP", "buy", 500)
    limited = place(db, late, "SLP", "buy", 100, min_receive=PV_FOR_100)
    db.execute("select public.process_next_queue_order()")
    now_receives = db.execute("select receive from public.quote_order('SLP', 'buy', 100)"
                              ).fetchone()[0]
    assert now_receives < PV_FOR_100
    fails_moving_nothing(
        db, limited,
        f"price moved past the limit: the buy would receive {now_receives} PV,"
        " min_receive is 73.20508075 PV",
    )
    assert outcome(db, first)[0] == "completed"


def test_the_apps_direct_insert_can_set_the_limit_and_it_is_enforced(db) -> None:
    new_issuer(db, "SLP")
    user = new_user(db, balance=1000)
    act_as(db, "service_role")
    order_id, stored = db.execute(
        "insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv, status,"
        " min_receive) values (%s, 'SLP', 'buy', 100, 0, 'pending', 73.2050807600)"
        " returning id, min_receive::text",
        (user,),
    ).fetchone()
    act_as_owner(db)
    assert stored == "73.20508076"  # kept at its shortest scale
    drain(db)
    assert outcome(db, order_id)[0:2] == (
        "failed",
        "price moved past the limit: the buy would receive 73.20508075 PV, min_receive is 73.20508076 PV",
    )


BAD_MIN_RECEIVE = [
    ("buy", "NaN", "finite"),
    ("buy", "Infinity", "finite"),
    ("sell", "-Infinity", "finite"),
    ("buy", "0", "greater than 0"),
    ("sell", "-1", "greater than 0"),
    ("buy", "1e15", "less than 1e15"),
    ("buy", "1.000000001", "PV with at most 8 decimals"),
    ("sell", "1.0000001", "USDP with at most 6 decimals"),
]


@pytest.mark.parametrize(("order_type", "min_receive", "message"), BAD_MIN_RECEIVE)
def test_a_bad_limit_is_refused_by_every_way_in_and_moves_nothing(db, order_type, min_receive,
                                                                 message) -> None:
    new_issuer(db, "SLP")
    user = holder(db, "SLP")
    amount = Decimal(10)
    before = money_state(db), db.execute("select count(*) from public.queue").fetchone()
    act_as(db, "authenticated", user)
    placed = error_of(db, "select public.place_order('SLP', %s, %s, null, %s)",
                      order_type, amount, Decimal(min_receive))
    act_as(db, "service_role")
    inserted = error_of(
        db,
        "insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv, min_receive)"
        " values (%s, 'SLP', %s, %s, %s, %s)",
        user, order_type, amount if order_type == "buy" else None,
        amount if order_type == "sell" else None, Decimal(min_receive),
    )
    for sqlstate, text in (placed, inserted):
        assert (sqlstate, message in text) == ("22023", True), text
    if order_type == "sell":
        act_as(db, "authenticated", user)
        sqlstate, text = error_of(db, "select public.close_position('SLP', null, %s)",
                                  Decimal(min_receive))
        assert (sqlstate, message in text) == ("22023", True), text
    assert (money_state(db), db.execute("select count(*) from public.queue").fetchone()) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("50"), places=2),
       step=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1"), places=6),
       order_type=st.sampled_from(["buy", "sell"]),
       usdp=st.decimals(min_value=Decimal("1"), max_value=Decimal("5000"), places=6),
       share=st.fractions(min_value=Decimal("0.01"), max_value=1),
       offset=st.sampled_from([-1, 0, 1]))
def test_the_limit_is_compared_exactly(db, base, step, order_type, usdp, share, offset) -> None:
    """min_receive = the quote completes, one unit above it fails, one below completes:
    the processor compares the exact amounts it writes, not a rounded price."""
    db.execute("savepoint example")
    try:
        new_issuer(db, "SPROP", base_price=base, price_step=step)
        user = new_user(db, balance=20000)
        place(db, user, "SPROP", "buy", usdp)
        drain(db)
        amount = usdp
        if order_type == "sell":
            held = position(db, user, "SPROP")[0]
            amount = (held * Decimal(share.numerator) / Decimal(share.denominator)).quantize(
                PV_UNIT, rounding="ROUND_DOWN")
            if amount < Decimal("0.01"):
                return
        db.execute("savepoint quote")
        try:
            receive = db.execute("select receive from public.quote_order('SPROP', %s, %s)",
                                 (order_type, amount)).fetchone()[0]
        except psycopg.errors.InvalidParameterValue:
            db.execute("rollback to savepoint quote")
            return  # too small to trade at all: test_quotes covers it
        unit = PV_UNIT if order_type == "buy" else USDP_UNIT
        limit = receive + offset * unit
        if limit <= 0:
            return
        order_id = place(db, user, "SPROP", order_type, amount, min_receive=limit)
        before = money_state(db)
        drain(db)
        status, error, pv, usdp_moved = outcome(db, order_id)
        if offset == 1:
            assert (status, pv, money_state(db)) == ("failed", None, before)
            side = "PV" if order_type == "buy" else "USDP"
            # min_receive is stored (and shown) at its shortest scale.
            assert f"{receive} {side}, min_receive is {limit.normalize():f} {side}" in error
        else:
            assert (status, error) == ("completed", None)
            assert (pv if order_type == "buy" else usdp_moved) == receive
    finally:
        db.execute("rollback to savepoint example")


# --- closing a position --------------------------------------------------------------------


def dust_holder(conn, ticker, dust: Decimal) -> object:
    """A user left holding exactly `dust` PV of `ticker` (below place_order's minimum)."""
    user = holder(conn, ticker)
    held = position(conn, user, ticker)[0]
    place(conn, user, ticker, "sell", held - dust)
    drain(conn)
    assert position(conn, user, ticker)[0] == dust
    return user


def test_a_dust_position_below_the_minimum_closes_to_exactly_zero(db) -> None:
    new_issuer(db, "CLS")
    user = dust_holder(db, "CLS", Decimal("0.005"))
    act_as(db, "authenticated", user)
    sqlstate, text = error_of(db, "select public.place_order('CLS', 'sell', 0.005)")
    assert (sqlstate, "between 0.01 and 1000000" in text) == ("22023", True)  # still refused
    order_id, order_type, pv, usdp, closes, limit = close(db, user, "CLS")
    assert (order_type, pv, usdp, closes, limit) == ("sell", Decimal("0.005"), None, True, None)
    drain(db)
    # Supply after the sells: 0.005 PV, price 1.00005; payout = 0.005 * 1.00005
    # - 0.01 * 0.005^2 / 2 = 0.005000125 -> 0.005000 (floored).
    assert outcome(db, order_id) == ("completed", None, Decimal("0.005"), Decimal("0.005000"))
    assert position(db, user, "CLS") == (0, 0)
    assert db.execute("select current_supply from public.issuer_trading where ticker = 'CLS'"
                      ).fetchone()[0] == 0


def test_a_worthless_position_closes_for_0_usdp(db) -> None:
    new_issuer(db, "CLS")
    user = dust_holder(db, "CLS", PV_UNIT)
    order_id = close(db, user, "CLS")[0]
    drain(db)
    assert outcome(db, order_id) == ("completed", None, PV_UNIT, Decimal(0))
    assert db.execute("select avg_price_paid from public.transactions where queue_id = %s",
                      (order_id,)).fetchone()[0] == 0
    assert position(db, user, "CLS") == (0, 0)


def test_a_whole_position_above_the_minimum_closes_too_with_its_limit(db) -> None:
    new_issuer(db, "CLS")
    user = holder(db, "CLS")
    held = position(db, user, "CLS")[0]
    assert held == PV_FOR_100
    # Selling all of it returns the pool to 0 but for rounding: payout 99.999999.
    failed = close(db, user, "CLS", min_receive=Decimal(100))[0]
    drain(db)
    assert outcome(db, failed)[0:2] == (
        "failed",
        "price moved past the limit: the sell would pay 99.999999 USDP, min_receive is 100 USDP",
    )
    assert position(db, user, "CLS") == (held, Decimal("1.366025403913"))
    order_id = close(db, user, "CLS", min_receive=Decimal("99.999999"))[0]
    drain(db)
    assert outcome(db, order_id) == ("completed", None, held, Decimal("99.999999"))
    assert position(db, user, "CLS") == (0, 0)


def test_a_close_is_refused_while_a_buy_of_the_ticker_is_pending(db) -> None:
    new_issuer(db, "CLS")
    new_issuer(db, "OTH")
    user = holder(db, "CLS")
    pending = place(db, user, "CLS", "buy", 5)
    act_as(db, "authenticated", user)
    sqlstate, text = error_of(db, "select public.close_position('CLS')")
    assert (sqlstate, "you have a pending buy of CLS" in text) == ("PA005", True), text
    db.execute("update public.queue set status = 'cancelled', processed_at = now() where id = %s",
               (pending,))
    place(db, user, "OTH", "buy", 5)  # another ticker's order does not matter
    assert close(db, user, "CLS")[2] == PV_FOR_100


def test_a_close_sells_what_the_pending_sells_leave_and_ends_at_zero(db) -> None:
    new_issuer(db, "CLS")
    user = holder(db, "CLS")
    sell = place(db, user, "CLS", "sell", 70)
    order_id, _, amount, *_ = close(db, user, "CLS")
    assert amount == PV_FOR_100 - 70
    act_as(db, "authenticated", user)
    sqlstate, text = error_of(db, "select public.close_position('CLS')")
    assert (sqlstate, text.splitlines()[0]) == (
        "PA002", "nothing to close: 73.20508075 CLS held, 73.20508075 reserved by your pending sells")
    drain(db)
    assert [outcome(db, o)[0:3] for o in (sell, order_id)] == [
        ("completed", None, Decimal(70)), ("completed", None, Decimal("3.20508075"))]
    assert position(db, user, "CLS") == (0, 0)


def test_a_close_whose_earlier_sell_was_cancelled_fails_and_moves_nothing(db) -> None:
    new_issuer(db, "CLS")
    user = holder(db, "CLS")
    sell = place(db, user, "CLS", "sell", 70)
    order_id = close(db, user, "CLS")[0]
    with signed_in(db, user):
        db.execute("select public.cancel_order(%s)", (sell,))
    fails_moving_nothing(
        db, order_id,
        "the position changed since the close was placed: 73.20508075 PV held, 3.20508075 to sell;"
        " close it again",
    )


def test_a_pending_close_reserves_the_whole_position(db) -> None:
    new_issuer(db, "CLS")
    user = holder(db, "CLS")
    order_id = close(db, user, "CLS")[0]
    act_as(db, "authenticated", user)
    sqlstate, text = error_of(db, "select public.place_order('CLS', 'sell', 1)")
    assert (sqlstate, "0 CLS available after pending sells" in text) == ("PA002", True), text
    later_buy = place(db, user, "CLS", "buy", 10)  # runs after the close (FIFO)
    drain(db)
    assert outcome(db, order_id)[0:3] == ("completed", None, PV_FOR_100)
    assert outcome(db, later_buy)[0] == "completed"
    assert position(db, user, "CLS")[0] == outcome(db, later_buy)[2]


@pytest.mark.parametrize(
    ("sql", "signed", "sqlstate", "message"),
    [
        ("select public.close_position('CLS')", False, "42501", "sign in"),
        ("select public.close_position('NOPE')", True, "P0002", "unknown ticker NOPE"),
        ("select public.close_position(null)", True, "P0002", "unknown ticker null"),
        ("select public.close_position('EMPTY')", True, "PA002",
         "nothing to close: 0 EMPTY held, 0 reserved by your pending sells"),
        ("select public.close_position('CLS', '')", True, "22023", "client_order_id"),
    ],
)
def test_bad_closes_are_refused_and_move_nothing(db, sql, signed, sqlstate, message) -> None:
    new_issuer(db, "CLS")
    new_issuer(db, "EMPTY")
    user = holder(db, "CLS")
    before = money_state(db), db.execute("select count(*) from public.queue").fetchone()
    act_as(db, "authenticated", user if signed else None)
    got = error_of(db, sql)
    assert (got[0], message in got[1]) == (sqlstate, True), got
    assert (money_state(db), db.execute("select count(*) from public.queue").fetchone()) == before


def test_closing_is_idempotent_with_a_client_order_id(db) -> None:
    new_issuer(db, "CLS")
    user = holder(db, "CLS")
    assert close(db, user, "CLS", client_order_id="c1") == close(db, user, "CLS", client_order_id="c1")


def test_only_close_position_sets_closes_position(db) -> None:
    new_issuer(db, "CLS")
    user = holder(db, "CLS")
    act_as(db, "service_role")
    sqlstate, text = error_of(
        db,
        "insert into public.queue (user_id, ticker, order_type, amount_pv, closes_position)"
        " values (%s, 'CLS', 'sell', 0.005, true)", user,
    )
    assert (sqlstate, "call it to close a position" in text) == ("22023", True), text


def test_a_close_whose_position_changed_fails_and_moves_nothing(db) -> None:
    """A close written by the table's owner (history, repairs) is not checked on the way in;
    the processor still sells only a whole position."""
    new_issuer(db, "CLS")
    user = holder(db, "CLS")
    order_id = db.execute(
        "insert into public.queue (user_id, ticker, order_type, amount_pv, closes_position)"
        " values (%s, 'CLS', 'sell', 0.005, true) returning id", (user,),
    ).fetchone()[0]
    fails_moving_nothing(
        db, order_id,
        "the position changed since the close was placed: 73.20508075 PV held, 0.005 to sell;"
        " close it again",
    )


@pytest.mark.parametrize("level", LEVELS)
def test_racing_closes_and_sells_never_sell_more_than_the_position(market, level) -> None:
    """16 connections of one user close the position or sell a third of it, all at once:
    at most one close gets in, and sells only before it; every order that got in executes,
    so a close leaves exactly 0."""
    with market.connect() as conn:
        new_issuer(conn, "RACE")
        user = holder(conn, "RACE")
        held = position(conn, user, "RACE")[0]
        conn.commit()
    sell = (held / 3).quantize(PV_UNIT)

    def attempt(conn, i):
        act_as(conn, "authenticated", user)
        if i % 2:
            conn.execute("select public.place_order('RACE', 'sell', %s)", (sell,))
        else:
            conn.execute("select public.close_position('RACE')")

    outcomes = race(market, level, attempt)
    assert set(outcomes) <= {"ok", "40001", "PA002", "PA003", "PA005"}, outcomes
    with market.connect(autocommit=True) as conn:
        drain(conn)
        closes, sells, failed = conn.execute(
            "select count(*) filter (where closes_position), count(*) filter (where not closes_position),"
            " count(*) filter (where status <> 'completed') from public.queue where order_type = 'sell'"
        ).fetchone()
        assert failed == 0
        assert closes <= 1 and sells <= 3 and closes + sells >= 1, (closes, sells, outcomes)
        pv, basis = position(conn, user, "RACE")
        assert (pv, basis == 0) == ((0, True) if closes else (held - sells * sell, False))
