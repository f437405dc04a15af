"""Replay (issue 15 item 4): the same pending orders executed by one run-sized call and by
one-order-at-a-time calls leave every row the same: users, holdings, issuers, queue statuses
and errors, trades, price ticks and the fills broadcast. A run-sized call writes a whole
ticker run as one set, with users and holdings written once per run; one order at a time
writes each order on its own. Any difference in the curve arithmetic, the checks, the cost
basis or the order of writes shows up here row by row."""

from __future__ import annotations

import random
from decimal import Decimal

import psycopg
import pytest

from conftest import audit, new_issuer, new_user
from test_matching_malformed_orders import GHOST, allow_impossible_rows

# Every table the engine writes, as comparable rows. Trade ids come from a sequence that a
# rolled-back savepoint does not rewind, so trades are named by their order (queue_id) and
# compared in id order (FIFO per ticker); ticks by their trade's order.
SNAPSHOTS = {
    "users": "select user_id, usdp_balance, to_jsonb(u) from public.users as u order by user_id",
    "portfolio": "select to_jsonb(p) - 'id' from public.portfolio as p order by user_id, ticker",
    "issuers": "select to_jsonb(t) from public.issuer_trading as t order by ticker",
    "queue": "select to_jsonb(q) from public.queue as q order by id",
    "trades": "select to_jsonb(x) - 'id' from public.transactions as x order by x.id",
    "ticks": "select to_jsonb(h) - 'id' - 'transaction_id', x.queue_id"
             " from public.price_history as h"
             " left join public.transactions as x on x.id = h.transaction_id order by h.id",
    "fills": "select topic, event, payload::text from realtime.messages"
             " where topic like 'orders:%%' order by payload ->> 'order_id', event",
}


def snapshot(db: psycopg.Connection) -> dict[str, list[tuple]]:
    has_realtime = db.execute("select to_regclass('realtime.messages') is not null").fetchone()[0]
    return {name: db.execute(sql).fetchall() for name, sql in SNAPSHOTS.items()
            if name != "fills" or has_realtime}


def queue_order(db: psycopg.Connection, user, ticker: str, order_type: str,
                usdp: str | None, pv: str | None, min_receive: str | None = None,
                closes: bool = False) -> int:
    return db.execute(
        "insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv,"
        " min_receive, closes_position)"
        " values (%s, %s, %s, %s::numeric, %s::numeric, %s::numeric, %s) returning id",
        (user, ticker, order_type, usdp, pv, min_receive, closes),
    ).fetchone()[0]


def random_amount(rng: random.Random, low: float, high: float, places: int) -> str:
    return str(round(Decimal(rng.uniform(low, high)), rng.randint(0, places)))


def build_market(db: psycopg.Connection, *, tickers: dict[str, int], seed: int = 15) -> None:
    """Issuers with the given number of orders each, 40 users with balances from nothing to
    plenty (so buys fail for balance in the middle of a run), holdings from a first drain,
    then the orders, queued ticker by ticker so that (date, id) order is the order the
    per-ticker runs take. Includes a close of a whole position (cost basis back to 0),
    several orders per user per run, malformed rows and a user with no users row."""
    rng = random.Random(seed)
    names = sorted(tickers)
    for n, ticker in enumerate(names):
        # The last issuer is priced so that a small buy gets less than 1e-8 PV.
        base = "2000000" if n == len(names) - 1 and len(names) > 1 else "1.00"
        step = "0.01" if n == 0 else rng.choice(["0.01", "0.001", "0.37"])
        new_issuer(db, ticker, base_price=base, price_step=step)
    users = [new_user(db, balance=rng.choice([0, 60, 400, 5000, 200000, 200000])) for _ in range(40)]
    closer = new_user(db, balance=100)
    # On the first curve (base 1, step 0.01) at supply 0 a buy of 22 gets exactly 20 PV;
    # the sell of 20 below closes the position.
    queue_order(db, closer, names[0], "buy", "22", None)
    for user in users[4:]:
        for ticker in names:
            queue_order(db, user, ticker, "buy", "30", None)
    run_sized(db)
    allow_impossible_rows(db)
    for n, ticker in enumerate(names):
        if n == len(names) - 1:
            queue_order(db, closer, ticker, "buy", "0.01", None)
        for k in range(tickers[ticker]):
            user = rng.choice(users[:8]) if rng.random() < 0.3 else rng.choice(users)
            roll = rng.random()
            # A tenth of the orders carry a slippage limit (issue 16) that some miss.
            limit = rng.random() < 0.1
            if roll < 0.6:
                queue_order(db, user, ticker, "buy", None, None) if k == 7 else queue_order(
                    db, user, ticker, "buy", random_amount(rng, 0.01, 300, 6), None,
                    random_amount(rng, 0.01, 30, 8) if limit else None)
            elif roll < 0.97:
                queue_order(db, user, ticker, "sell", None, random_amount(rng, 0.01, 3, 8),
                            random_amount(rng, 0.01, 3, 6) if limit else None)
            elif roll < 0.98:
                queue_order(db, GHOST, ticker, "buy", "5", None)
            elif roll < 0.99:
                queue_order(db, user, ticker, "buy", "5", "2")
            else:
                queue_order(db, user, ticker, "buy", "0.01", None)
            if n == 0 and k == tickers[ticker] // 2:
                # A close of the whole position, then one of a position already closed.
                queue_order(db, closer, ticker, "sell", None, "20", closes=True)
                queue_order(db, closer, ticker, "sell", None, "20", closes=True)


def run_sized(db: psycopg.Connection) -> None:
    """One call per ticker for the whole of its pending orders, as process_all_pending_orders
    makes them, in ticker order."""
    tickers = db.execute("select ticker from public.issuer_trading order by ticker").fetchall()
    for (ticker,) in tickers:
        db.execute("select * from pauv.process_ticker_orders(%s, 100000, 'infinity', now())",
                   (ticker,))


def one_at_a_time(db: psycopg.Connection) -> int:
    """process_next_queue_order until nothing is pending: the oldest order first."""
    calls = 0
    while True:
        result = db.execute("select public.process_next_queue_order()").fetchone()[0]
        if not result["processed"]:
            assert result["reason"] == "no pending order", result
            return calls
        calls += 1


def replay(db: psycopg.Connection, first, second) -> tuple[dict, dict]:
    db.execute("savepoint replay")
    first(db)
    a = snapshot(db)
    assert audit(db) == []
    db.execute("rollback to savepoint replay")
    second(db)
    b = snapshot(db)
    assert audit(db) == []
    return a, b


def assert_same_rows(a: dict, b: dict) -> None:
    for table in a:
        assert len(a[table]) == len(b[table]), table
        for row_a, row_b in zip(a[table], b[table], strict=True):
            assert row_a == row_b, f"{table} differs"


def test_a_run_sized_call_and_one_order_at_a_time_write_the_same_rows(db) -> None:
    build_market(db, tickers={"RPA": 1300, "RPB": 250, "RPC": 60})
    pending = db.execute("select count(*) from public.queue where status = 'pending'").fetchone()[0]
    a, b = replay(db, run_sized, one_at_a_time)
    assert_same_rows(a, b)
    statuses = {}
    for (row,) in a["queue"]:
        statuses[row["status"], row["error_message"] is None] = statuses.get(
            (row["status"], row["error_message"] is None), 0) + 1
    # The data exercises what it should: most orders trade, many fail for every reason.
    assert statuses[("completed", True)] > pending // 2
    errors = {row["error_message"].split(":")[0].split(" ")[0]
              for (row,) in a["queue"] if row["error_message"]}
    assert {"insufficient", "unknown", "amount", "a"} <= errors
    assert {row["error_message"].split(":")[0] for (row,) in a["queue"]
            if row["error_message"]} >= {"insufficient balance", "insufficient holdings",
                                         "amount too small", "price moved past the limit",
                                         "the position changed since the close was placed"}
    closed = [row for row in a["portfolio"] if row[0]["pv_amount"] == 0]
    assert closed and all(row[0]["avg_cost_basis"] == 0 for row in closed)


def test_process_all_pending_orders_in_one_call_matches_one_order_at_a_time(db) -> None:
    build_market(db, tickers={"ONE": 1500})
    calls = {}

    def one_call(conn: psycopg.Connection) -> None:
        calls["result"] = conn.execute(
            "select public.process_all_pending_orders(100000, 50)").fetchone()[0]

    a, b = replay(db, one_call, one_at_a_time)
    assert_same_rows(a, b)
    assert calls["result"]["total_processed"] == 1503
    assert calls["result"]["has_more"] is False


@pytest.mark.parametrize("seed", [1, 2])
def test_replay_holds_for_other_order_streams(db, seed) -> None:
    build_market(db, tickers={"SDA": 400, "SDB": 150}, seed=seed)
    a, b = replay(db, run_sized, one_at_a_time)
    assert_same_rows(a, b)


def test_rows_differ_when_a_single_order_is_replayed_differently(db) -> None:
    """The comparison itself finds a difference: one order changed between the replays."""
    build_market(db, tickers={"DIF": 50})
    order = db.execute("select min(id) from public.queue where status = 'pending'"
                       " and order_type = 'buy' and amount_usdp > 1").fetchone()[0]

    def changed(conn: psycopg.Connection) -> None:
        conn.execute("update public.queue set amount_usdp = amount_usdp - 0.5 where id = %s",
                     (order,))
        one_at_a_time(conn)

    a, b = replay(db, run_sized, changed)
    with pytest.raises(AssertionError):
        assert_same_rows(a, b)
