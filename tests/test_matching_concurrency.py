"""Matching under concurrency: several committed connections at once placing,
cancelling and draining; a worker killed mid-drain; tickers progressing in parallel."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

import psycopg
import pytest

from conftest import Cluster, act_as, audit, drain, new_issuer, new_user

EXPECTED_REFUSALS = {"PA001", "PA002", "PA003", "PA004"}


def setup_market(cluster: Cluster, tickers: list[str], users: int, balance: int):
    with cluster.connect(autocommit=True) as conn:
        for t in tickers:
            new_issuer(conn, t)
        return [new_user(conn, balance=balance) for _ in range(users)]


def user_conn(cluster: Cluster, user_id) -> psycopg.Connection:
    """A connection that acts as the signed-in user in every transaction it opens."""
    conn = cluster.connect()
    conn.autocommit = False
    return conn


def place_as(conn, user_id, ticker, order_type, amount):
    try:
        act_as(conn, "authenticated", user_id)
        row = conn.execute("select id from public.place_order(%s, %s, %s)",
                           (ticker, order_type, amount)).fetchone()
        conn.commit()
        return row[0]
    except psycopg.Error as e:
        conn.rollback()
        if e.sqlstate in EXPECTED_REFUSALS:
            return None
        raise


def test_two_concurrent_placements_cannot_spend_the_same_balance(market: Cluster) -> None:
    (user,) = setup_market(market, ["DBL"], users=1, balance=100)
    first, second = market.connect(), market.connect()
    act_as(first, "authenticated", user)
    first.execute("select public.place_order('DBL', 'buy', 60)")  # not committed yet
    outcome: dict = {}

    def place_second():
        try:
            act_as(second, "authenticated", user)
            second.execute("select public.place_order('DBL', 'buy', 60)")
            second.commit()
            outcome["result"] = "placed"
        except psycopg.Error as e:
            second.rollback()
            outcome["result"] = e.sqlstate

    thread = threading.Thread(target=place_second)
    thread.start()
    with market.connect(autocommit=True) as watcher:
        for _ in range(200):
            waiting = watcher.execute(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
            ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.02)
        assert waiting == 1, "the second placement should wait for the first"
    first.commit()
    thread.join(10)
    assert outcome["result"] == "PA001"
    with market.connect() as conn:
        assert conn.execute("select count(*), sum(amount_usdp) from public.queue").fetchone() == (
            1, Decimal("60"))
    first.close()
    second.close()


def test_random_streams_drained_by_four_workers_keep_every_invariant(market: Cluster) -> None:
    tickers = ["AAA", "BBB", "CCC", "DDD"]
    users = setup_market(market, tickers, users=24, balance=500)
    placing_done = threading.Event()
    errors: list[BaseException] = []
    placed = {"n": 0}

    def placer(seed: int) -> None:
        rng = random.Random(seed)
        conn = market.connect()
        try:
            for _ in range(120):
                user = rng.choice(users)
                action = rng.random()
                ticker = rng.choice(tickers)
                if action < 0.55:
                    amount = Decimal(rng.randint(1, 6000)) / 100
                    if place_as(conn, user, ticker, "buy", amount):
                        placed["n"] += 1
                elif action < 0.85:
                    held = conn.execute("select pv_amount from public.portfolio"
                                        " where user_id = %s and ticker = %s",
                                        (user, ticker)).fetchone()
                    conn.rollback()
                    if held and held[0] >= Decimal("0.02"):
                        share = Decimal(rng.randint(1, 100)) / 100
                        amount = max(Decimal("0.01"), (held[0] * share).quantize(Decimal("0.00000001")))
                        if place_as(conn, user, ticker, "sell", amount):
                            placed["n"] += 1
                elif action < 0.95:
                    pending = conn.execute("select id from public.queue where user_id = %s"
                                           " and status = 'pending' limit 1", (user,)).fetchone()
                    conn.rollback()
                    if pending:
                        try:
                            act_as(conn, "authenticated", user)
                            conn.execute("select public.cancel_order(%s)", (pending[0],))
                            conn.commit()
                        except psycopg.Error as e:
                            conn.rollback()
                            if e.sqlstate not in EXPECTED_REFUSALS:
                                raise
                else:
                    # A direct insert by the service, validated only when processed: this
                    # one may well overspend and must then fail without moving anything.
                    conn.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                                 " values (%s, %s, 'buy', %s)", (user, ticker, rng.randint(1, 400)))
                    conn.commit()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            conn.close()

    def worker() -> None:
        conn = market.connect(autocommit=True)
        act_as_service = "set role service_role"
        conn.execute(act_as_service)
        try:
            while True:
                result = conn.execute("select public.process_all_pending_orders(25, 5)").fetchone()[0]
                if placing_done.is_set() and not result["has_more"]:
                    return
                if result["total_processed"] == 0:
                    time.sleep(0.005)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            conn.close()

    workers = [threading.Thread(target=worker) for _ in range(4)]
    placers = [threading.Thread(target=placer, args=(seed,)) for seed in range(3)]
    for t in workers + placers:
        t.start()
    for t in placers:
        t.join(300)
    placing_done.set()
    for t in workers:
        t.join(300)
    assert errors == []
    assert placed["n"] > 100

    with market.connect() as conn:
        statuses = dict(conn.execute("select status, count(*) from public.queue group by status"))
        assert set(statuses) <= {"completed", "failed", "cancelled"}
        assert statuses.get("completed", 0) > 100
        assert conn.execute(
            "select count(*) from public.queue as q"
            " where q.status = 'completed' and (select count(*) from public.transactions as t"
            " where t.queue_id = q.id) <> 1"
        ).fetchone()[0] == 0
        assert conn.execute("select count(*) from public.transactions").fetchone()[0] == statuses[
            "completed"]
        deposits = conn.execute("select sum(amount) from pauv.usdp_movements").fetchone()[0]
        assert deposits == 24 * 500
        assert audit(conn) == []


def test_a_worker_killed_before_commit_leaves_no_trace(market: Cluster) -> None:
    users = setup_market(market, ["KIL"], users=5, balance=1000)
    with market.connect(autocommit=True) as conn:
        for user in users:
            for _ in range(3):
                conn.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                             " values (%s, 'KIL', 'buy', 25)", (user,))
    victim = market.connect()
    pid = victim.info.backend_pid
    result = victim.execute("select public.process_all_pending_orders()").fetchone()[0]
    assert result["successful"] == 15  # done, but not committed

    def sleep_forever():
        try:
            victim.execute("select pg_sleep(60)")
        except psycopg.Error:
            pass

    sleeper = threading.Thread(target=sleep_forever)
    sleeper.start()
    with market.connect(autocommit=True) as observer:
        # Nobody else sees the uncommitted work, nor any 'processing' state.
        assert dict(observer.execute("select status, count(*) from public.queue group by status")) == {
            "pending": 15}
        time.sleep(0.2)
        assert observer.execute("select pg_terminate_backend(%s)", (pid,)).fetchone()[0] is True
        sleeper.join(10)
        assert dict(observer.execute("select status, count(*) from public.queue group by status")) == {
            "pending": 15}
        assert observer.execute("select count(*) from public.transactions").fetchone()[0] == 0
        assert observer.execute("select sum(usdp_balance) from public.users").fetchone()[0] == 5000
        # The next call does the work, once.
        assert drain(observer)["successful"] == 15
        assert audit(observer) == []
    victim.close()


def queue_buys(cluster: Cluster, orders: list[tuple]) -> None:
    with cluster.connect(autocommit=True) as conn:
        for user, ticker, amount in orders:
            conn.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                         " values (%s, %s, 'buy', %s)", (user, ticker, amount))


def completed_by_ticker(conn) -> dict:
    return dict(conn.execute(
        "select ticker, count(*) from public.queue where status = 'completed' group by ticker"))


def test_tickers_progress_in_parallel_and_a_busy_ticker_is_skipped_not_waited_for(
    market: Cluster,
) -> None:
    users = setup_market(market, ["ONE", "TWO"], users=2, balance=1000)
    queue_buys(market, [(users[0], "ONE", 10)] * 3 + [(users[1], "TWO", 10)] * 3)
    first = market.connect()
    # The first caller executes one order of one ticker and keeps its transaction open.
    assert first.execute("select public.process_all_pending_orders(1)").fetchone()[0][
        "successful"] == 1
    with market.connect(autocommit=True) as second:
        second.execute("set statement_timeout = '5s'")
        result = second.execute("select public.process_all_pending_orders()").fetchone()[0]
        assert (result["successful"], result["has_more"]) == (3, True)
        (other,) = completed_by_ticker(second)
        assert second.execute("select public.process_next_queue_order()").fetchone()[0][
            "processed"] is False
        first.commit()
        assert drain(second)["successful"] == 2
        assert completed_by_ticker(second) == {"ONE": 3, "TWO": 3}
        assert audit(second) == []
    first.close()


def test_process_next_queue_order_says_the_tickers_are_busy_not_that_nothing_is_pending(
    market: Cluster,
) -> None:
    users = setup_market(market, ["ONE", "TWO"], users=2, balance=1000)
    queue_buys(market, [(users[0], "ONE", 10), (users[0], "ONE", 10), (users[1], "TWO", 10)])
    # Another caller owns both tickers (their advisory locks, as a drain holds them).
    holder = market.connect()
    for ticker in ("ONE", "TWO"):
        assert holder.execute("select pg_try_advisory_xact_lock(1885435254,"
                              " pauv.ticker_lock_id(%s))", (ticker,)).fetchone()[0] is True
    with market.connect(autocommit=True) as caller:
        assert caller.execute("select public.process_next_queue_order()").fetchone()[0] == {
            "processed": False,
            "reason": "pending orders wait, but their tickers are busy in another caller, retry",
            "busy_orders": 3,
        }
        holder.rollback()
        assert caller.execute("select public.process_next_queue_order()").fetchone()[0][
            "status"] == "completed"
        drain(caller)
        assert caller.execute("select public.process_next_queue_order()").fetchone()[0] == {
            "processed": False, "reason": "no pending order"}
    holder.close()


def test_an_order_being_inserted_holds_back_its_ticker_so_fifo_cannot_break(
    market: Cluster,
) -> None:
    users = setup_market(market, ["ONE", "TWO"], users=2, balance=1000)
    queue_buys(market, [(users[0], "ONE", 10), (users[1], "TWO", 10)])
    inserting = market.connect()
    inserting.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                      " values (%s, 'ONE', 'buy', 5)", (users[0],))  # not committed yet
    with market.connect(autocommit=True) as worker:
        worker.execute("set statement_timeout = '5s'")
        result = worker.execute("select public.process_all_pending_orders()").fetchone()[0]
        assert (result["successful"], result["has_more"]) == (1, True)
        assert completed_by_ticker(worker) == {"TWO": 1}
        inserting.commit()
        assert drain(worker)["successful"] == 2
        executed = worker.execute(
            "select q.amount_usdp from public.transactions as t join public.queue as q"
            " on q.id = t.queue_id where t.ticker = 'ONE' order by t.id").fetchall()
        assert executed == [(Decimal("10"),), (Decimal("5"),)]
        assert audit(worker) == []
    inserting.close()


def test_a_worker_killed_inside_the_drain_leaves_no_trace(market: Cluster) -> None:
    """Killed while process_all_pending_orders is still running: the worker is held up
    inside the call (an operator holds one issuer's row), then terminated."""
    users = setup_market(market, ["KA", "KB"], users=4, balance=1000)
    queue_buys(market, [(u, t, 20) for u in users for t in ("KA", "KB")])
    blocker = market.connect()
    blocker.execute("select 1 from public.issuer_trading where ticker = 'KB' for update")
    victim = market.connect(autocommit=True)
    pid = victim.info.backend_pid
    outcome: dict = {}

    def drain_until_killed():
        try:
            victim.execute("select public.process_all_pending_orders()")
            outcome["result"] = "finished"
        except psycopg.Error as e:
            outcome["result"] = type(e).__name__

    worker = threading.Thread(target=drain_until_killed)
    worker.start()
    with market.connect(autocommit=True) as observer:
        for _ in range(250):
            waiting = observer.execute(
                "select wait_event_type from pg_stat_activity where pid = %s", (pid,)
            ).fetchone()
            if waiting and waiting[0] == "Lock":
                break
            time.sleep(0.02)
        assert waiting == ("Lock",), "the worker should be waiting inside the drain"
        assert observer.execute("select pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        worker.join(10)
        assert outcome["result"] != "finished"
        blocker.rollback()
        assert dict(observer.execute(
            "select status, count(*) from public.queue group by status")) == {"pending": 8}
        assert observer.execute("select count(*) from public.transactions").fetchone()[0] == 0
        assert observer.execute("select sum(usdp_balance) from public.users").fetchone()[0] == 4000
        assert drain(observer)["successful"] == 8
        assert audit(observer) == []
    blocker.close()
    victim.close()
