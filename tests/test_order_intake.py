"""What may enter the queue: one-sided amounts, bounded decimal scale, only new pending
orders stamped at intake, the Pauv app's own service-role INSERT validated exactly like
place_order, and the placement limits under every isolation level."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest

from conftest import (
    BAD_ORDER_AMOUNTS,
    Cluster, act_as, as_role, audit, drain, money_state, new_issuer, new_user, signed_in,
)

# --- helpers ------------------------------------------------------------------------------


def app_insert(conn, user_id, ticker, order_type, amount, **extra):
    """The Pauv app's order API: a service-role INSERT, the unused side 0 (PAUV_LEGACY_SCHEMA
    §9). `extra` adds columns (status, date, ...) as a hostile caller might."""
    cols = {"user_id": user_id, "ticker": ticker, "order_type": order_type,
            "amount_usdp": amount if order_type == "buy" else 0,
            "amount_pv": amount if order_type != "buy" else 0, "status": "pending"} | extra
    names = ", ".join(cols)
    marks = ", ".join(f"%({c})s" for c in cols)
    with as_role(conn, "service_role"):
        return conn.execute(f"insert into public.queue ({names}) values ({marks}) returning id",
                            cols).fetchone()[0]


def place(conn, user_id, ticker, order_type, amount):
    with signed_in(conn, user_id):
        return conn.execute("select id from public.place_order(%s, %s, %s)",
                            (ticker, order_type, amount)).fetchone()[0]


def state(conn) -> tuple:
    """money_state plus the number of queue rows: a refused order leaves both unchanged."""
    return money_state(conn) + conn.execute("select count(*) from public.queue").fetchone()


def refused(conn, call) -> psycopg.Error:
    """Runs `call`, which must raise; the transaction continues as it was before."""
    conn.execute("savepoint refused")
    with pytest.raises(psycopg.Error) as err:
        call()
    conn.execute("rollback to savepoint refused")
    return err.value


# --- 1. the table refuses malformed rows --------------------------------------------------


def test_the_audits_reproduction_a_sell_with_its_amount_in_amount_usdp_is_refused(db) -> None:
    new_issuer(db, "DJMX")
    user = new_user(db, balance=100)
    snippet = ("insert into public.queue (user_id, ticker, order_type, amount_usdp, status)"
               " values (%s, 'DJMX', 'sell', 5, 'pending')")

    def insert():
        with as_role(db, "service_role"):
            db.execute(snippet, (user,))
    err = refused(db, insert)
    assert err.sqlstate == "22023"
    assert "a sell gives up amount_pv" in str(err) and "amount_usdp must be 0 or null, got 5" in str(err)
    assert db.execute("select count(*) from public.queue").fetchone() == (0,)


@pytest.mark.parametrize(
    ("order_type", "usdp", "pv", "constraint"),
    [
        ("sell", "5", None, "queue_sell_needs_amount_pv_and_no_amount_usdp"),
        ("sell", None, None, "queue_sell_needs_amount_pv_and_no_amount_usdp"),
        ("sell", "1", "1", "queue_sell_needs_amount_pv_and_no_amount_usdp"),
        ("buy", None, None, "queue_buy_needs_amount_usdp_and_no_amount_pv"),
        ("buy", None, "5", "queue_buy_needs_amount_usdp_and_no_amount_pv"),
        ("buy", "5", "1", "queue_buy_needs_amount_usdp_and_no_amount_pv"),
    ],
)
def test_every_role_is_refused_a_row_with_its_amount_on_the_wrong_side(
    db, order_type, usdp, pv, constraint
) -> None:
    """The owner (postgres, the SQL editor) skips the app's validation but not the table's
    constraints; an UPDATE cannot move an amount to the wrong side either."""
    new_issuer(db, "SIDE")
    user = new_user(db, balance=100)
    err = refused(db, lambda: db.execute(
        "insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv)"
        " values (%s, 'SIDE', %s, %s, %s)", (user, order_type, usdp, pv)))
    assert err.sqlstate == "23514"
    assert err.diag.constraint_name == constraint
    order_id = db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp,"
                          " amount_pv) values (%s, 'SIDE', 'buy', 5, 0) returning id",
                          (user,)).fetchone()[0]
    err = refused(db, lambda: db.execute(
        "update public.queue set amount_usdp = null where id = %s", (order_id,)))
    assert err.diag.constraint_name == "queue_buy_needs_amount_usdp_and_no_amount_pv"


def test_the_apps_zero_on_the_unused_side_is_accepted_and_executes(db) -> None:
    new_issuer(db, "ZERO")
    user = new_user(db, balance=100)
    buy = app_insert(db, user, "ZERO", "buy", "50")
    assert drain(db)["successful"] == 1
    held = db.execute("select pv_amount from public.portfolio where user_id = %s",
                      (user,)).fetchone()[0]
    sell = app_insert(db, user, "ZERO", "sell", held)
    assert drain(db)["successful"] == 1
    assert db.execute("select id, order_type, amount_usdp, amount_pv, status from public.queue"
                      " order by id").fetchall() == [
        (buy, "buy", Decimal("50"), Decimal("0"), "completed"),
        (sell, "sell", Decimal("0"), held, "completed"),
    ]
    assert db.execute("select pv_amount from public.portfolio where user_id = %s",
                      (user,)).fetchone()[0] == 0


# --- 2. bounded decimal scale ---------------------------------------------------------------

LONG_ZEROS = "0" * 16000

# Columns derived from order amounts and the most decimals each may carry: USDP 6, PV 8, a
# price base + step * supply 14, a cost basis or average price 12.
SCALES = {
    "queue.amount_usdp": ("select max(scale(amount_usdp)) from public.queue", 6),
    "queue.amount_pv": ("select max(scale(amount_pv)) from public.queue", 8),
    "users.usdp_balance": ("select max(scale(usdp_balance)) from public.users", 6),
    "usdp_movements.amount": ("select max(scale(amount)) from pauv.usdp_movements", 6),
    "portfolio.pv_amount": ("select max(scale(pv_amount)) from public.portfolio", 8),
    "portfolio.avg_cost_basis": ("select max(scale(avg_cost_basis)) from public.portfolio", 12),
    "issuer_trading.total_usdp": ("select max(scale(total_usdp)) from public.issuer_trading", 6),
    "issuer_trading.current_supply":
        ("select max(scale(current_supply)) from public.issuer_trading", 8),
    "issuer_trading.current_price":
        ("select max(scale(current_price)) from public.issuer_trading", 14),
    "transactions.amount_usdp": ("select max(scale(amount_usdp)) from public.transactions", 6),
    "transactions.pv_traded": ("select max(scale(pv_traded)) from public.transactions", 8),
    "transactions.avg_price_paid":
        ("select max(scale(avg_price_paid)) from public.transactions", 12),
    "transactions.prices": ("select max(greatest(scale(start_price), scale(end_price)))"
                            " from public.transactions", 14),
    "price_history.price": ("select max(scale(price)) from public.price_history", 14),
    "price_history.supply": ("select max(scale(supply)) from public.price_history", 8),
    "issuer_stats_cache.current_price":
        ("select max(scale(current_price)) from public.issuer_stats_cache", 14),
    "issuer_stats_cache.market_cap":
        ("select max(scale(market_cap)) from public.issuer_stats_cache", 6),
    "issuer_stats_cache.volume_24h":
        ("select max(scale(volume_24h)) from public.issuer_stats_cache", 6),
    "issuer_stats_cache.circulating_supply":
        ("select max(scale(circulating_supply)) from public.issuer_stats_cache", 8),
    "issuer_stats_cache.changes": (
        "select max(greatest(scale(price_1h_change), scale(price_24h_change),"
        " scale(price_7d_change))) from public.issuer_stats_cache", 20),
    "price_candles_hourly.prices": ("select max(greatest(scale(open), scale(high), scale(low),"
                                    " scale(close))) from public.price_candles_hourly", 14),
    "price_candles_hourly.volume_usdp":
        ("select max(scale(volume_usdp)) from public.price_candles_hourly", 6),
    "price_candles_hourly.volume_pv":
        ("select max(scale(volume_pv)) from public.price_candles_hourly", 8),
    "price_candles_hourly.supply_close":
        ("select max(scale(supply_close)) from public.price_candles_hourly", 8),
}


def test_amounts_padded_with_16000_zeros_are_stored_at_their_domains_scale(db) -> None:
    new_issuer(db, "PAD")
    user = new_user(db)
    db.execute("select public.deposit_usdp(%s, %s::numeric)", (user, "300." + LONG_ZEROS))
    db.execute("select public.increment_user_balance(%s, %s::numeric)", (user, "1." + LONG_ZEROS))
    db.execute("select public.withdraw_usdp(%s, %s::numeric)", (user, "0.5" + LONG_ZEROS))
    with signed_in(db, user):
        db.execute("select public.place_order('PAD', 'buy', %s::numeric)", ("0.01" + LONG_ZEROS,))
    with as_role(db, "service_role"):
        db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv,"
                   " status) values (%s, 'PAD', 'buy', %s::numeric, 0, 'pending')",
                   (user, "99.5" + LONG_ZEROS))
    # Times within the window the processor and the jobs accept (p_now at most 1 day old):
    # two hours back from the current hour, so the snapshot at `hour` closes their hour.
    hour = db.execute("select date_trunc('hour', now())").fetchone()[0]
    at = {m: (hour - timedelta(hours=2) + timedelta(minutes=m)).isoformat() for m in (10, 20, 30)}
    assert drain(db, at[10])["successful"] == 2
    with signed_in(db, user):
        db.execute("select public.place_order('PAD', 'sell', %s::numeric)", ("1.5" + LONG_ZEROS,))
    app_insert(db, user, "PAD", "sell", "0.25" + LONG_ZEROS)
    assert drain(db, at[20])["successful"] == 2
    db.execute("select public.refresh_issuer_stats_cache(%s)", (at[30],))
    db.execute("select public.snapshot_hourly_prices(p_now => %s)", (hour,))
    found = {name: db.execute(sql).fetchone()[0] for name, (sql, _) in SCALES.items()}
    assert all(v is not None for v in found.values()), found
    too_long = {name: v for name, v in found.items() if v > SCALES[name][1]}
    assert too_long == {}
    proceeds = db.execute("select sum(amount_usdp) from public.transactions where order_type = 'sell'"
                          ).fetchone()[0]
    assert db.execute("select usdp_balance from public.users").fetchone()[0] == (
        Decimal("300.5") - Decimal("0.01") - Decimal("99.5") + proceeds)
    assert db.execute("select amount_usdp::text from public.queue order by id").fetchall() == [
        ("0.01",), ("99.5",), (None,), ("0",)]
    # The JSON the API serves for the issuer stays short.
    assert db.execute("select length(row_to_json(t)::text) < 1000 from public.issuer_trading as t"
                      ).fetchone() == (True,)


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        ("update public.users set usdp_balance = ('1.' || repeat('0', 16000))::numeric",
         "usdp_amount_scale_at_most_6"),
        ("update public.issuer_trading set total_usdp = ('0.' || repeat('0', 7))::numeric",
         "usdp_amount_scale_at_most_6"),
        ("update public.portfolio set pv_amount = ('1.' || repeat('0', 9))::numeric",
         "pv_quantity_scale_at_most_8"),
    ],
)
def test_a_money_column_refuses_a_longer_scale_from_any_writer(db, sql, constraint) -> None:
    new_issuer(db, "SC")
    user = new_user(db, balance=100)
    place(db, user, "SC", "buy", "10")
    drain(db)
    err = refused(db, lambda: db.execute(sql))
    assert err.sqlstate == "23514" and err.diag.constraint_name == constraint


# --- 3. only what the lifecycle allows ------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"status": "processing"}, "a new order is 'pending'"),
        ({"status": "completed"}, "a new order is 'pending'"),
        ({"status": "failed"}, "a new order is 'pending'"),
        ({"status": "cancelled"}, "a new order is 'pending'"),
        ({"processed_at": "2026-11-28 09:00+00"}, "processed_at and error_message"),
        ({"error_message": "done"}, "processed_at and error_message"),
        ({"legacy_id": str(uuid.UUID(int=1))}, "legacy_id"),
    ],
)
def test_a_direct_insert_of_a_row_the_lifecycle_does_not_allow_is_refused(db, extra, message) -> None:
    new_issuer(db, "LIFE")
    user = new_user(db, balance=100)
    before = state(db)
    err = refused(db, lambda: app_insert(db, user, "LIFE", "buy", "10", **extra))
    assert err.sqlstate == "22023", str(err)
    assert message in str(err)
    assert state(db) == before


def test_a_backdated_direct_insert_is_stamped_at_intake_and_fifo_holds(db) -> None:
    new_issuer(db, "FIFO")
    user, other = new_user(db, balance=1000), new_user(db, balance=1000)
    place(db, user, "FIFO", "buy", "10")
    drain(db)
    before = db.execute("select clock_timestamp()").fetchone()[0]
    late = app_insert(db, other, "FIFO", "buy", "20", date="2000-01-01 00:00+00")
    owners = db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp, date)"
                        " values (%s, 'FIFO', 'buy', 5, '2000-01-01') returning id, date",
                        (user,)).fetchone()
    stamped = db.execute("select date from public.queue where id = %s", (late,)).fetchone()[0]
    assert stamped >= before and owners[1] >= stamped
    drain(db)
    executed = [r[0] for r in db.execute("select queue_id from public.transactions order by id")]
    assert executed[1:] == [late, owners[0]]
    assert audit(db) == []


# --- 4. the app's INSERT shape, validated exactly like place_order ---------------------------

# (order_type, amount, sqlstate, message) as test_matching's place_order battery, where the
# INSERT can express it; balance and holdings are the processor's to refuse.
BATTERY = BAD_ORDER_AMOUNTS + [
    ("sell", "-1", "22023", "between 0.01 and 1000000"),
    ("sell", "1000001", "22023", "between 0.01 and 1000000"),
    ("buy", None, "22023", "amount_usdp"),
    ("sell", None, "22023", "amount_pv"),
    ("buy", "0", "22023", "amount_usdp"),
]


@pytest.mark.parametrize(("order_type", "amount", "sqlstate", "message"), BATTERY)
def test_bad_app_inserts_get_place_orders_error_and_move_nothing(
    db, order_type, amount, sqlstate, message
) -> None:
    new_issuer(db, "BAD")
    user = new_user(db, balance=500)
    before = state(db)
    err = refused(db, lambda: app_insert(db, user, "BAD", order_type, amount))
    assert err.sqlstate == sqlstate, str(err)
    assert message in str(err)
    # place_order says the same about the same input (where it can express it).
    if amount is not None and amount != "0":
        same = refused(db, lambda: place(db, user, "BAD", order_type, Decimal(amount)))
        assert (same.sqlstate, same.diag.message_primary) == (err.sqlstate, err.diag.message_primary)
    assert state(db) == before


def test_unknown_ticker_user_and_the_sixth_pending_order_are_refused_as_place_order_does(db) -> None:
    new_issuer(db, "SIX")
    user = new_user(db, balance=100)
    err = refused(db, lambda: app_insert(db, user, "NOPE", "buy", "10"))
    assert (err.sqlstate, err.diag.message_primary) == ("P0002", "unknown ticker NOPE")
    same = refused(db, lambda: place(db, user, "NOPE", "buy", "10"))
    assert (same.sqlstate, same.diag.message_primary) == ("P0002", "unknown ticker NOPE")
    ghost = uuid.uuid4()
    err = refused(db, lambda: app_insert(db, ghost, "SIX", "buy", "10"))
    assert (err.sqlstate, err.diag.message_primary) == ("P0002", f"unknown user {ghost}: no account row")
    for i in range(5):
        (app_insert if i % 2 else place)(db, user, "SIX", "buy", "1")
    before = state(db)
    for attempt in (lambda: app_insert(db, user, "SIX", "buy", "1"),
                    lambda: place(db, user, "SIX", "buy", "1")):
        err = refused(db, attempt)
        assert err.sqlstate == "PA003"
        assert "at most 5 pending orders per user" in str(err)
    assert state(db) == before


def test_one_multi_row_insert_cannot_pass_the_pending_limit(db) -> None:
    new_issuer(db, "MULTI")
    user = new_user(db, balance=100)

    def insert_six():
        with as_role(db, "service_role"):
            db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp,"
                       " amount_pv, status) select %s, 'MULTI', 'buy', 1, 0, 'pending'"
                       " from generate_series(1, 6)", (user,))
    assert refused(db, insert_six).sqlstate == "PA003"
    assert db.execute("select count(*) from public.queue").fetchone() == (0,)


def test_good_app_inserts_execute_fifo_with_place_orders(db) -> None:
    new_issuer(db, "GOOD")
    users = [new_user(db, balance=1000) for _ in range(3)]
    ids = []
    for i, user in enumerate(users * 2):
        amount = Decimal(10 + i)
        ids.append(app_insert(db, user, "GOOD", "buy", amount) if i % 2
                   else place(db, user, "GOOD", "buy", amount))
    assert db.execute("select array_agg(id order by date, id) from public.queue").fetchone()[0] == ids
    assert drain(db)["successful"] == 6
    assert [r[0] for r in db.execute("select queue_id from public.transactions order by id")] == ids
    assert db.execute("select sum(amount_usdp) from public.transactions").fetchone()[0] == 75
    assert audit(db) == []


# --- 5. placement limits at every isolation level ---------------------------------------------

LEVELS = ["read committed", "repeatable read", "serializable"]
RACERS = 16


def race(market: Cluster, level: str, attempt) -> dict[str, int]:
    """RACERS connections, each in one `level` transaction whose snapshot is taken before any
    of them places; then all place at once. Returns outcomes by SQLSTATE ('ok' placed)."""
    outcomes: dict[str, int] = {}
    barrier = threading.Barrier(RACERS)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def racer(i: int) -> None:
        try:
            with market.connect() as conn:
                conn.execute(f"set transaction isolation level {level}")
                conn.execute("select count(*) from public.queue")  # the snapshot, in RR/SER
                barrier.wait(10)
                try:
                    attempt(conn, i)
                    conn.commit()
                    key = "ok"
                except psycopg.Error as e:
                    conn.rollback()
                    key = e.sqlstate
                with lock:
                    outcomes[key] = outcomes.get(key, 0) + 1
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return outcomes


def reservations(market: Cluster, user) -> tuple:
    with market.connect() as conn:
        return conn.execute(
            "select"
            " (select count(*) from public.queue where user_id = %(u)s and status = 'pending'),"
            " (select coalesce(sum(amount_usdp), 0) from public.queue"
            "  where user_id = %(u)s and status = 'pending' and order_type = 'buy'),"
            " (select usdp_balance from public.users where user_id = %(u)s),"
            " (select coalesce(sum(amount_pv), 0) from public.queue"
            "  where user_id = %(u)s and status = 'pending' and order_type = 'sell'),"
            " (select pv_amount from public.portfolio where user_id = %(u)s)",
            {"u": user}).fetchone()


@pytest.mark.parametrize("level", LEVELS)
def test_concurrent_placements_keep_every_limit_at_every_isolation_level(
    market: Cluster, level: str
) -> None:
    with market.connect(autocommit=True) as conn:
        new_issuer(conn, "RACE")
        user = new_user(conn, balance=100)
        place_committed(conn, user, "RACE", "buy", "40")
        drain(conn)
        held = conn.execute("select pv_amount from public.portfolio").fetchone()[0]
    sell = (held / 3).quantize(Decimal("0.00000001"))

    def attempt(conn, i):
        act_as(conn, "authenticated", user)
        if i % 2:
            conn.execute("select public.place_order('RACE', 'sell', %s)", (sell,))
        else:
            conn.execute("select public.place_order('RACE', 'buy', 25)")

    outcomes = race(market, level, attempt)
    pending, buys, balance, sells, holding = reservations(market, user)
    assert pending <= 5 and buys <= balance and sells <= holding, (outcomes, pending, buys, sells)
    assert outcomes.get("ok", 0) >= 1
    assert set(outcomes) <= {"ok", "40001", "PA001", "PA002", "PA003"}, outcomes


@pytest.mark.parametrize("level", LEVELS)
def test_concurrent_app_inserts_keep_the_pending_limit_at_every_isolation_level(
    market: Cluster, level: str
) -> None:
    with market.connect(autocommit=True) as conn:
        new_issuer(conn, "RACE")
        user = new_user(conn, balance=100)

    def attempt(conn, i):
        act_as(conn, "service_role")
        conn.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp,"
                     " amount_pv, status) values (%s, 'RACE', 'buy', 1, 0, 'pending')", (user,))

    outcomes = race(market, level, attempt)
    assert reservations(market, user)[0] <= 5, outcomes
    assert outcomes.get("ok", 0) >= 1
    assert set(outcomes) <= {"ok", "40001", "PA003"}, outcomes


def two_multi_row_inserts(market: Cluster, orders: list[list[uuid.UUID]]) -> list[str]:
    """Two service-role INSERTs at once, each one buy per user of its list, in list order;
    both start together (a barrier) and pause 1 s after their first row, so both hold their
    first user's intake row before either takes its second. Returns each statement's
    outcome ('ok' or SQLSTATE)."""
    sql = ("insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv, status)"
           " select u, 'LOCK', 'buy', 1, 0, 'pending'"
           " from unnest(%s::uuid[]) with ordinality as t(u, n)"
           " where pg_sleep(case when n = 2 then 1 else 0 end) is not null order by n")
    outcomes = [""] * len(orders)
    barrier = threading.Barrier(len(orders))

    def insert(i: int) -> None:
        with market.connect() as conn:
            act_as(conn, "service_role")
            barrier.wait(10)
            try:
                conn.execute(sql, (orders[i],))
                conn.commit()
                outcomes[i] = "ok"
            except psycopg.Error as e:
                conn.rollback()
                outcomes[i] = e.sqlstate or "?"

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(len(orders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_multi_row_inserts_of_the_same_users_deadlock_only_in_opposite_orders(market) -> None:
    """README: a multi-row insert takes its users' intake rows in row order, so opposite
    orders can deadlock (40P01, nothing moved) and inserts sorted by user_id cannot."""
    with market.connect(autocommit=True) as conn:
        new_issuer(conn, "LOCK")
        users = sorted(new_user(conn, balance=10) for _ in range(2))

    assert sorted(two_multi_row_inserts(market, [users, users[::-1]])) == ["40P01", "ok"]
    with market.connect() as conn:
        assert conn.execute("select count(*), count(distinct user_id) from public.queue"
                            ).fetchone() == (2, 2)
        conn.execute("delete from public.queue")
        conn.commit()

    assert two_multi_row_inserts(market, [users, users]) == ["ok", "ok"]
    with market.connect() as conn:
        assert conn.execute("select user_id, count(*) from public.queue group by 1 order by 1"
                            ).fetchall() == [(users[0], 2), (users[1], 2)]


def place_committed(conn, user, ticker, order_type, amount) -> None:
    with conn.transaction():
        act_as(conn, "authenticated", user)
        conn.execute("select public.place_order(%s, %s, %s)", (ticker, order_type, amount))
