"""Order matching on the bonding curve: the SQL engine against an exact oracle, order
placement and cancellation, bad input, and the guide's Step 6 snippet."""

from __future__ import annotations

import uuid
from decimal import Decimal
from fractions import Fraction

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import curve_oracle as oracle
from conftest import (
    BAD_ORDER_AMOUNTS,
    as_role,
    audit,
    drain,
    money_state,
    new_issuer,
    new_user,
    signed_in,
)

HYPOTHESIS = settings(max_examples=60, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])

usdp_amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=6)
prices = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("100000"), places=6)
steps = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1000"), places=6)
supplies = st.decimals(min_value=Decimal("0"), max_value=Decimal("10000000"), places=8)


def place(conn, user_id, ticker, order_type, amount, client_order_id=None):
    with signed_in(conn, user_id):
        return conn.execute(
            "select id, status from public.place_order(%s, %s, %s, %s)",
            (ticker, order_type, Decimal(amount) if amount is not None else None, client_order_id),
        ).fetchone()


# --- the curve functions against the oracle ---------------------------------------------


@HYPOTHESIS
@given(base=prices, step=steps, supply=supplies, usdp=usdp_amounts)
def test_buy_quantity_is_the_exact_floor(db, base, step, supply, usdp) -> None:
    price = base + step * supply
    got = db.execute("select pauv.buy_quantity(%s, %s, %s)", (price, step, usdp)).fetchone()[0]
    want = oracle.buy_quantity(Fraction(price), Fraction(step), Fraction(usdp))
    assert Fraction(got) == want


@HYPOTHESIS
@given(base=prices, step=steps, supply=supplies, data=st.data())
def test_sell_payout_rounds_down_to_a_micro_usdp(db, base, step, supply, data) -> None:
    assume(supply >= Decimal("0.01"))
    pv = data.draw(st.decimals(min_value=Decimal("0.01"), max_value=supply, places=8))
    price = base + step * supply
    got = db.execute("select pauv.sell_payout(%s, %s, %s)", (price, step, pv)).fetchone()[0]
    want = oracle.sell_payout(Fraction(price), Fraction(step), Fraction(pv))
    assert Fraction(got) == want


def test_known_buy_of_100_usdp_at_the_default_curve(db) -> None:
    # n = (sqrt(1 + 2*0.01*100) - 1) / 0.01 = 73.2050807568... -> 73.20508075
    assert db.execute("select pauv.buy_quantity(1, 0.01, 100)").fetchone()[0] == Decimal("73.20508075")


# --- whole trading sequences against the oracle -----------------------------------------

operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2),  # which user
        st.sampled_from(["buy", "sell"]),
        st.one_of(usdp_amounts.filter(lambda d: d <= 5000), st.sampled_from([Decimal("0.01")])),
        st.fractions(min_value=0, max_value=1),  # share of holdings to sell
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("50"), places=2),
       step=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1"), places=6),
       ops=operations)
def test_trading_sequences_match_the_oracle_and_everyone_can_sell_out(db, base, step, ops) -> None:
    db.execute("savepoint example")
    try:
        new_issuer(db, "ORCL", base_price=base, price_step=step)
        users = [new_user(db, balance=10000) for _ in range(3)]
        model = oracle.Market(Fraction(base), Fraction(step),
                              balances={u: Fraction(10000) for u in users})

        def run(user, order_type, amount):
            column = "amount_usdp" if order_type == "buy" else "amount_pv"
            db.execute(f"insert into public.queue (user_id, ticker, order_type, {column})"
                       " values (%s, 'ORCL', %s, %s)", (user, order_type, amount))
            db.execute("select public.process_all_pending_orders()")
            status, pv, usdp = (model.buy if order_type == "buy" else model.sell)(user, Fraction(amount))
            got = db.execute(
                "select q.status, t.pv_traded, t.amount_usdp from public.queue as q"
                " left join public.transactions as t on t.queue_id = q.id"
                " order by q.id desc limit 1"
            ).fetchone()
            assert got[0] == status
            if status == "completed":
                assert (Fraction(got[1]), Fraction(got[2])) == (pv, usdp)

        for who, order_type, usdp, share in ops:
            user = users[who]
            if order_type == "buy":
                run(user, "buy", usdp)
            else:
                held = model.holdings.get(user, Fraction(0))
                pv = oracle.dec_pv(Fraction(int(held * share / oracle.PV_TICK)) * oracle.PV_TICK)
                if pv > 0:
                    run(user, "sell", pv)

        # Everyone sells out: the pool pays every holder.
        for user in users:
            held = model.holdings.get(user, Fraction(0))
            if held >= Fraction(1, 100):
                run(user, "sell", oracle.dec_pv(held))

        supply, pool, price = db.execute(
            "select current_supply, total_usdp, current_price from public.issuer_trading"
            " where ticker = 'ORCL'"
        ).fetchone()
        assert (Fraction(supply), Fraction(pool)) == (model.supply, model.pool)
        assert Fraction(price) == model.price
        assert model.pool >= model.curve_value()
        assert model.pool - model.curve_value() <= model.dust_allowance
        for user in users:
            balance = db.execute("select usdp_balance from public.users where user_id = %s",
                                 (user,)).fetchone()[0]
            assert Fraction(balance) == model.balances[user]
        assert audit(db) == []
    finally:
        db.execute("rollback to savepoint example")


def test_cost_basis_is_weighted_on_buys_kept_on_sells_and_zero_when_closed(db) -> None:
    new_issuer(db, "CB")
    user = new_user(db, balance=1000)
    for amount in ("100", "50"):
        place(db, user, "CB", "buy", amount)
    drain(db)
    pv, basis = db.execute("select pv_amount, avg_cost_basis from public.portfolio"
                           " where user_id = %s", (user,)).fetchone()
    assert pv == Decimal("99.99999999")
    assert basis == round(Decimal(150) / pv, 12)
    place(db, user, "CB", "sell", "40")
    drain(db)
    assert db.execute("select pv_amount, avg_cost_basis from public.portfolio where user_id = %s",
                      (user,)).fetchone() == (Decimal("59.99999999"), basis)
    place(db, user, "CB", "sell", "59.99999999")
    drain(db)
    assert db.execute("select pv_amount, avg_cost_basis from public.portfolio where user_id = %s",
                      (user,)).fetchone() == (0, 0)
    assert audit(db) == []


def test_a_trade_records_one_transaction_and_one_price_tick(db) -> None:
    new_issuer(db, "TX")
    user = new_user(db, balance=500)
    order_id, _ = place(db, user, "TX", "buy", "100")
    # A time the processor accepts (1 day back at most), distinct from now().
    result = db.execute("select public.process_next_queue_order(now() - interval '10 minutes')"
                        ).fetchone()[0]
    assert result["processed"] is True
    assert result["order_id"] == order_id
    assert result["status"] == "completed"
    assert Decimal(str(result["pv_amount"])) == Decimal("73.20508075")
    tx = db.execute(
        "select id, amount_usdp, pv_traded, avg_price_paid, start_price, end_price, date"
        " from public.transactions where queue_id = %s", (order_id,)
    ).fetchall()
    assert len(tx) == 1
    tx_id, usdp, pv, avg, start, end, date = tx[0]
    assert (usdp, pv, start, end) == (100, Decimal("73.20508075"), 1, Decimal("1.7320508075"))
    assert avg == round(Decimal(100) / pv, 12)
    assert result["transaction_id"] == tx_id
    ticks = db.execute("select price, supply, transaction_id from public.price_history"
                       " where ticker = 'TX'").fetchall()
    assert ticks == [(Decimal("1.7320508075"), Decimal("73.20508075"), tx_id)]
    assert db.execute("select q.status, q.processed_at = t.date from public.queue as q"
                      " join public.transactions as t on t.queue_id = q.id"
                      " where q.id = %s", (order_id,)).fetchone() == ("completed", True)
    assert db.execute("select public.process_next_queue_order()").fetchone()[0] == {
        "processed": False, "reason": "no pending order"}


# --- placing orders -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_type", "amount", "sqlstate", "message"),
    BAD_ORDER_AMOUNTS + [
        ("buy", "0", "22023", "between 0.01 and 1000000"),
        ("buy", None, "22023", "finite"),
        ("buy", "600", "PA001", "insufficient balance"),
        ("sell", "1", "PA002", "insufficient holdings"),
    ],
)
def test_bad_placements_are_rejected_and_move_nothing(db, order_type, amount, sqlstate, message):
    new_issuer(db, "BAD")
    user = new_user(db, balance=500)
    before = money_state(db)
    db.execute("savepoint before")
    with pytest.raises(psycopg.Error) as err:
        place(db, user, "BAD", order_type, amount if amount is None else amount)
    assert err.value.sqlstate == sqlstate, str(err.value)
    assert message in str(err.value)
    db.execute("rollback to savepoint before")
    assert db.execute("select count(*) from public.queue").fetchone()[0] == 0
    assert money_state(db) == before


def test_unknown_ticker_is_rejected(db) -> None:
    user = new_user(db, balance=100)
    with pytest.raises(psycopg.errors.NoDataFound, match="unknown ticker NOPE"):
        place(db, user, "NOPE", "buy", "10")


def test_placing_requires_a_signed_in_user(db) -> None:
    with as_role(db, "authenticated"), pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                     match="sign in"):
        db.execute("select public.place_order('X', 'buy', 10)")


@pytest.mark.parametrize("role", ["anon", "service_role"])
def test_only_authenticated_users_may_call_place_order(db, role) -> None:
    with as_role(db, role), pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("select public.place_order('X', 'buy', 10)")


def test_pending_orders_reserve_balance_and_holdings(db) -> None:
    new_issuer(db, "RES")
    user = new_user(db, balance=100)
    place(db, user, "RES", "buy", "60")
    with pytest.raises(psycopg.Error) as err:
        place(db, user, "RES", "buy", "40.000001")
    assert err.value.sqlstate == "PA001"
    assert "40.000000 USDP available" in str(err.value) or "40 USDP available" in str(err.value)
    db.rollback()


def test_sells_are_limited_by_holdings_net_of_pending_sells(db) -> None:
    new_issuer(db, "HLD")
    user = new_user(db, balance=100)
    place(db, user, "HLD", "buy", "100")
    drain(db)
    place(db, user, "HLD", "sell", "70")
    db.execute("savepoint s")
    with pytest.raises(psycopg.Error) as err:
        place(db, user, "HLD", "sell", "3.20508076")
    assert err.value.sqlstate == "PA002"
    db.execute("rollback to savepoint s")
    assert place(db, user, "HLD", "sell", "3.20508075")[1] == "pending"


def test_a_sixth_pending_order_is_refused(db) -> None:
    new_issuer(db, "SIX")
    user = new_user(db, balance=100)
    for _ in range(5):
        place(db, user, "SIX", "buy", "1")
    with pytest.raises(psycopg.Error) as err:
        place(db, user, "SIX", "buy", "1")
    assert err.value.sqlstate == "PA003"
    assert "at most 5 pending orders" in str(err.value)


def test_the_same_client_order_id_returns_the_same_order(db) -> None:
    new_issuer(db, "IDEM")
    user = new_user(db, balance=100)
    first = place(db, user, "IDEM", "buy", "10", "order-1")
    again = place(db, user, "IDEM", "buy", "10", "order-1")
    assert first == again
    other = new_user(db, balance=100)
    assert place(db, other, "IDEM", "buy", "10", "order-1")[0] != first[0]
    assert db.execute("select count(*) from public.queue").fetchone()[0] == 2


# --- cancelling -----------------------------------------------------------------------------


def test_owner_cancels_a_pending_order_and_it_never_executes(db) -> None:
    new_issuer(db, "CAN")
    user = new_user(db, balance=100)
    order_id, _ = place(db, user, "CAN", "buy", "10")
    with signed_in(db, user):
        row = db.execute("select status, processed_at is not null from public.cancel_order(%s)",
                         (order_id,)).fetchone()
    assert row == ("cancelled", True)
    assert drain(db)["total_processed"] == 0
    assert db.execute("select usdp_balance from public.users where user_id = %s",
                      (user,)).fetchone()[0] == 100
    assert db.execute("select count(*) from public.transactions").fetchone()[0] == 0


def test_cancelling_someone_elses_or_a_finished_order_fails(db) -> None:
    new_issuer(db, "CAN")
    owner, intruder = new_user(db, balance=100), new_user(db)
    order_id, _ = place(db, owner, "CAN", "buy", "10")
    db.execute("savepoint s")
    with signed_in(db, intruder), pytest.raises(psycopg.errors.NoDataFound, match="no order"):
        db.execute("select public.cancel_order(%s)", (order_id,))
    db.execute("rollback to savepoint s")
    drain(db)
    with signed_in(db, owner), pytest.raises(psycopg.Error) as err:
        db.execute("select public.cancel_order(%s)", (order_id,))
    assert err.value.sqlstate == "PA004"
    assert "is completed" in str(err.value)


# --- processing: who may, and orders that fail ------------------------------------------------


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize("call", [
    "select public.process_next_queue_order()",
    "select public.process_all_pending_orders()",
    "select * from public.audit_market_invariants()",
])
def test_api_roles_cannot_process_or_audit(db, role, call) -> None:
    with as_role(db, role), pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(call)


def test_service_role_runs_the_invariant_audit(db) -> None:
    """Issue 11 item 4: granted to service_role, it failed with 42501 on the ledger."""
    new_issuer(db, "AUD")
    user = new_user(db, balance=100)
    place(db, user, "AUD", "buy", "10")
    drain(db)
    with as_role(db, "service_role"):
        assert audit(db) == []
    # It really reads the ledger as service_role: a balance nobody deposited is reported.
    db.execute("savepoint broken")
    db.execute("update public.users set usdp_balance = usdp_balance + 1 where user_id = %s",
               (user,))
    with as_role(db, "service_role"):
        assert audit(db) == [
            ("conservation", None, "balances 91 + pools 10 = 101, net deposits 100")]
    db.execute("rollback to savepoint broken")


def test_service_role_processes_orders(db) -> None:
    new_issuer(db, "SRV")
    user = new_user(db, balance=100)
    place(db, user, "SRV", "buy", "10")
    with as_role(db, "service_role"):
        result = db.execute("select public.process_all_pending_orders()").fetchone()[0]
    assert (result["successful"], result["failed"], result["has_more"]) == (1, 0, False)


def insert_order(db, user, ticker, order_type, amount):
    column = "amount_usdp" if order_type == "buy" else "amount_pv"
    return db.execute(
        f"insert into public.queue (user_id, ticker, order_type, {column}) values (%s, %s, %s, %s)"
        " returning id", (user, ticker, order_type, Decimal(amount))
    ).fetchone()[0]


@pytest.mark.parametrize(
    ("order_type", "amount", "message"),
    [
        ("buy", "600", "insufficient balance: 500 USDP available, 600 needed"),
        ("sell", "1", "insufficient holdings: 0 PV held, 1 to sell"),
        ("buy", "0.001", "amount must be between 0.01 and 1000000 USDP, got 0.001"),
        ("sell", "2000000", "amount must be between 0.01 and 1000000 PV, got 2000000"),
    ],
)
def test_directly_inserted_bad_orders_fail_with_a_reason_and_move_nothing(
    db, order_type, amount, message
) -> None:
    new_issuer(db, "DIR")
    user = new_user(db, balance=500)
    before = money_state(db)
    order_id = insert_order(db, user, "DIR", order_type, amount)
    result = drain(db)
    assert (result["successful"], result["failed"]) == (0, 1)
    row = db.execute("select status, error_message, processed_at from public.queue where id = %s",
                     (order_id,)).fetchone()
    assert row[0] == "failed"
    assert row[1] == message
    assert row[2] is not None
    assert money_state(db) == before
    assert audit(db) == []


def test_a_buy_too_small_for_one_token_unit_fails(db) -> None:
    new_issuer(db, "BIG", base_price="10000000")
    user = new_user(db, balance=500)
    order_id = insert_order(db, user, "BIG", "buy", "0.01")
    drain(db)
    assert db.execute("select status, error_message from public.queue where id = %s",
                      (order_id,)).fetchone() == (
        "failed", "amount too small: 0.01 USDP buys less than 0.00000001 PV")


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        ("ticker", "NOPE", psycopg.errors.ForeignKeyViolation),
        ("user_id", str(uuid.UUID(int=7)), psycopg.errors.ForeignKeyViolation),
        ("amount_usdp", "NaN", psycopg.errors.CheckViolation),
        ("amount_usdp", "-1", psycopg.errors.CheckViolation),
        ("amount_usdp", "1.1234567", psycopg.errors.CheckViolation),
        ("amount_usdp", "0", psycopg.errors.CheckViolation),
        ("order_type", "hold", psycopg.errors.CheckViolation),
    ],
)
def test_direct_inserts_of_impossible_orders_are_refused(db, column, value, error) -> None:
    new_issuer(db, "DIR")
    user = new_user(db, balance=500)
    row = {"user_id": str(user), "ticker": "DIR", "order_type": "buy", "amount_usdp": "10"}
    row[column] = value
    with pytest.raises(error):
        db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                   " values (%(user_id)s, %(ticker)s, %(order_type)s, %(amount_usdp)s::numeric)", row)


def test_orders_of_a_ticker_execute_in_intake_order_whatever_date_is_written(db) -> None:
    """Every new order is stamped when it enters the queue: an explicit date (here one in the
    future, then one in the past) cannot reorder orders of a ticker."""
    new_issuer(db, "FIFO")
    user = new_user(db, balance=1000)
    first = db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp, date)"
                       " values (%s, 'FIFO', 'buy', 10, '2999-11-28 12:00+00') returning id",
                       (user,)).fetchone()[0]
    second = db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp, date)"
                        " values (%s, 'FIFO', 'buy', 20, '2000-11-28 11:00+00') returning id",
                        (user,)).fetchone()[0]
    drain(db)
    executed = db.execute("select queue_id from public.transactions order by id").fetchall()
    assert executed == [(first,), (second,)]
    assert audit(db) == []


def test_the_guides_step_6_snippet_works_as_written(db) -> None:
    new_issuer(db, "AAPL")
    user = new_user(db, balance=1000)
    snippet = (
        "INSERT INTO public.queue (user_id, ticker, order_type, amount_usdp, status)\n"
        "VALUES ('your-user-id', 'AAPL', 'buy', 100, 'pending');"
    ).replace("your-user-id", str(user))
    db.execute(snippet)
    db.execute("SELECT process_all_pending_orders();")
    rows = db.execute("SELECT * FROM public.queue ORDER BY date DESC LIMIT 5;").fetchall()
    assert [r[6] for r in rows] == ["completed"]
    assert audit(db) == []


def test_a_signed_in_user_without_an_account_row_is_refused(db) -> None:
    new_issuer(db, "ACC")
    ghost = uuid.uuid4()  # a valid JWT subject with no auth.users / users row
    with signed_in(db, ghost), pytest.raises(psycopg.errors.NoDataFound,
                                              match=f"unknown user {ghost}"):
        db.execute("select public.place_order('ACC', 'buy', 10)")
