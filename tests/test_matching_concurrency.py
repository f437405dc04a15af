"""Matching under concurrency: several committed connections at once placing,
cancelling and draining; a worker killed mid-drain; tickers progressing in parallel."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

import psycopg
import pytest

from conftest import Cluster, act_as, audit, drain, new_issuer, new_user, wait_until_blocked

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


def run_placers_while_draining(cluster: Cluster, placer, *, placers: int, workers: int,
                               call_size: int, placing_done: threading.Event,
                               errors: list[BaseException]) -> None:
    """Runs placer(seed) for seeds 0..placers-1 while `workers` service connections call
    process_all_pending_orders(call_size) in a loop; they stop once placing is done and
    nothing is pending. Asserts that no thread raised."""

    def worker() -> None:
        conn = cluster.connect(autocommit=True)
        conn.execute("set role service_role")
        try:
            while True:
                result = conn.execute("select public.process_all_pending_orders(%s, 5)",
                                      (call_size,)).fetchone()[0]
                if placing_done.is_set() and not result["has_more"]:
                    return
                if result["total_processed"] == 0:
                    time.sleep(0.005)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    seeded = [threading.Thread(target=placer, args=(seed,)) for seed in range(placers)]
    for t in threads + seeded:
        t.start()
    for t in seeded:
        t.join(300)
    placing_done.set()
    for t in threads:
        t.join(300)
    assert errors == []


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

    run_placers_while_draining(market, placer, placers=3, workers=4, call_size=25,
                               placing_done=placing_done, errors=errors)
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


def hold_a_user(market: Cluster, request: pytest.FixtureRequest, tickers: list[str],
                balance: int) -> tuple[psycopg.Connection, object, object, object]:
    """Issuers `tickers` and HLD, three users (busy, a, b); a connection `first` whose open
    call has executed busy's order on HLD, so it holds `busy` until first.commit()."""
    busy, a, b = setup_market(market, [*tickers, "HLD"], users=3, balance=balance)
    queue_buys(market, [(busy, "HLD", 10)])
    first = market.connect()
    request.addfinalizer(first.close)
    assert first.execute("select public.process_all_pending_orders()").fetchone()[0][
        "successful"] == 1
    return first, busy, a, b


def executed_amounts(conn, ticker: str) -> list[Decimal]:
    """The USDP each executed buy of the ticker spent, in execution (trade id) order."""
    return [r[0] for r in conn.execute(
        "select q.amount_usdp from public.transactions as t join public.queue as q"
        " on q.id = t.queue_id where t.ticker = %s order by t.id", (ticker,))]


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
        assert executed_amounts(worker, "ONE") == [Decimal("10"), Decimal("5")]
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
        wait_until_blocked(observer, pid, "the worker should be waiting inside the drain")
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


def test_a_placement_does_not_wait_for_a_processor_call_that_has_not_committed(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    """Issue 15: a processor held the ticker's intake lock until it committed, so every
    placement of the ticker waited for the whole call. Placements now wait only for the
    instant a run's horizon is read: with a lock_timeout they would fail if they waited."""
    users = setup_market(market, ["ONE"], users=2, balance=1000)
    queue_buys(market, [(users[0], "ONE", 10), (users[1], "ONE", 11), (users[0], "ONE", 12)])
    first = market.connect()
    request.addfinalizer(first.close)
    # The call has executed every order (their users' rows and the issuer's are locked
    # by it) and has not committed.
    assert first.execute("select public.process_all_pending_orders()").fetchone()[0][
        "successful"] == 3
    placer = market.connect()
    request.addfinalizer(placer.close)
    placer.execute("set lock_timeout = '2s'")
    placer.commit()
    assert place_as(placer, users[0], "ONE", "buy", Decimal("13")) is not None
    with market.connect(autocommit=True) as service:
        service.execute("set lock_timeout = '2s'")
        service.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                        " values (%s, 'ONE', 'buy', 14)", (users[1],))
        # The ticker still belongs to the first call: no other processor takes it.
        result = service.execute("select public.process_all_pending_orders()").fetchone()[0]
        assert (result["total_processed"], result["has_more"]) == (0, True)
        assert service.execute("select public.process_next_queue_order()").fetchone()[0] == {
            "processed": False,
            "reason": "pending orders wait, but their tickers are busy in another caller, retry",
            "busy_orders": 5,  # its 3 executed orders are pending until it commits
        }
        first.commit()
        assert drain(service)["successful"] == 2
        assert executed_amounts(service, "ONE") == [Decimal(n) for n in (10, 11, 12, 13, 14)]
        assert audit(service) == []


def test_a_call_executes_orders_placed_while_it_runs_after_the_earlier_ones(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    users = setup_market(market, ["ONE"], users=2, balance=1000)
    queue_buys(market, [(users[0], "ONE", 10), (users[1], "ONE", 11)])
    first = market.connect()
    request.addfinalizer(first.close)
    assert first.execute("select public.process_all_pending_orders()").fetchone()[0][
        "successful"] == 2
    placer = market.connect()
    request.addfinalizer(placer.close)
    placer.execute("set lock_timeout = '2s'")  # fails, rather than hangs, if it waits
    placer.commit()
    assert place_as(placer, users[0], "ONE", "buy", Decimal("12")) is not None
    # Still in its transaction, the caller reads a new horizon and the new order with it.
    result = first.execute("select public.process_all_pending_orders()").fetchone()[0]
    assert (result["successful"], result["has_more"]) == (1, False)
    first.commit()
    with market.connect(autocommit=True) as service:
        assert executed_amounts(service, "ONE") == [Decimal(n) for n in (10, 11, 12)]
        assert service.execute("select usdp_balance from public.users where user_id = %s",
                               (users[0],)).fetchone()[0] == Decimal("978")
        assert audit(service) == []


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_a_processor_refuses_a_transaction_that_is_not_read_committed(
    market: Cluster, level: str,
) -> None:
    """The horizon holds because each statement sees what committed before it started; a
    transaction-wide snapshot could miss an earlier order and run a later one first."""
    users = setup_market(market, ["ONE"], users=1, balance=1000)
    queue_buys(market, [(users[0], "ONE", 10)])
    with market.connect() as conn:
        conn.execute(f"set transaction isolation level {level}")
        for call in ("process_all_pending_orders()", "process_next_queue_order()"):
            with pytest.raises(psycopg.errors.InvalidTransactionState) as raised:
                conn.execute(f"select public.{call}")
            assert str(raised.value.diag.message_primary) == (
                f"the order processor runs at READ COMMITTED, this transaction is {level.upper()}")
            assert "BEGIN ISOLATION LEVEL READ COMMITTED" in raised.value.diag.message_hint
            conn.rollback()
            conn.execute(f"set transaction isolation level {level}")
        conn.rollback()
        assert conn.execute("select status from public.queue").fetchall() == [("pending",)]
        conn.rollback()


def test_one_hot_ticker_placed_into_and_drained_at_once_stays_fifo(market: Cluster) -> None:
    """Placements (place_order and the app's direct INSERT) stream into one ticker while
    three callers drain it in small calls: every order executes in (date, id) order
    (the audit's fifo check over trade ids) and nothing is left or lost."""
    users = setup_market(market, ["HOT"], users=16, balance=100000)
    placing_done = threading.Event()
    errors: list[BaseException] = []
    placed = {"n": 0}

    def placer(seed: int) -> None:
        rng = random.Random(seed)
        conn = market.connect()
        try:
            for i in range(80):
                user = users[(seed * 4 + i) % len(users)]
                amount = Decimal(rng.randint(100, 5000)) / 100
                if i % 3:
                    if place_as(conn, user, "HOT", "buy", amount):
                        placed["n"] += 1
                else:
                    conn.execute("insert into public.queue (user_id, ticker, order_type,"
                                 " amount_usdp) values (%s, 'HOT', 'buy', %s)", (user, amount))
                    conn.commit()
                    placed["n"] += 1
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            conn.close()

    run_placers_while_draining(market, placer, placers=4, workers=3, call_size=7,
                               placing_done=placing_done, errors=errors)
    with market.connect() as conn:
        assert dict(conn.execute("select status, count(*) from public.queue group by status")) == {
            "completed": placed["n"]}
        assert conn.execute("select count(*) from public.transactions").fetchone()[0] == placed["n"]
        # Execution order is (date, id) order, compared whole (the audit checks neighbours).
        assert [r[0] for r in conn.execute(
            "select t.queue_id from public.transactions as t order by t.id")] == [r[0] for r in conn.execute(
                "select q.id from public.queue as q order by q.date, q.id")]
        assert audit(conn) == []


def test_a_call_that_owns_the_ticker_waits_for_an_order_being_inserted_before_later_ones(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    """The caller already owns the ticker when an earlier order is still being inserted
    and a later one has committed: the later one waits behind the earlier (the run reads
    only orders dated before its horizon), so FIFO holds."""
    users = setup_market(market, ["ONE"], users=2, balance=1000)
    queue_buys(market, [(users[0], "ONE", 10)])
    with market.connect(autocommit=True) as conn:
        # A wake of the processor is queued, as when the webhook is configured: inserts
        # then only read the wake state. (Unconfigured, each insert claims the wake row,
        # so a second insert would wait for the first to commit.)
        conn.execute("update pauv.process_queue_wake_state set wake_requested_at = now(),"
                     " wake_timeout = '1 hour'")
    first = market.connect()
    request.addfinalizer(first.close)
    assert first.execute("select public.process_all_pending_orders()").fetchone()[0][
        "successful"] == 1  # and the ticker is this transaction's until it commits
    inserting = market.connect()
    request.addfinalizer(inserting.close)
    inserting.execute("set lock_timeout = '2s'")
    inserting.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                      " values (%s, 'ONE', 'buy', 5)", (users[0],))  # not committed yet
    with market.connect(autocommit=True) as later:
        later.execute("set lock_timeout = '2s'")
        later.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                      " values (%s, 'ONE', 'buy', 6)", (users[1],))  # dated after it
    result = first.execute("select public.process_all_pending_orders()").fetchone()[0]
    assert (result["total_processed"], result["has_more"]) == (0, True)
    inserting.commit()
    result = first.execute("select public.process_all_pending_orders()").fetchone()[0]
    assert (result["successful"], result["has_more"]) == (2, False)
    first.commit()
    with market.connect(autocommit=True) as service:
        assert executed_amounts(service, "ONE") == [Decimal(n) for n in (10, 5, 6)]
        assert audit(service) == []


def install_dblink_trigger(market: Cluster, request: pytest.FixtureRequest, name: str,
                           when: str, body: str):
    """A test-only statement trigger `name` (`when`: "after insert on public.price_history")
    whose PL/pgSQL `body` acts from other sessions through dblink: another writer's move
    at an exact point of a processor call. SECURITY DEFINER as a superuser: dblink lets only
    superusers connect without a password. Returns the function that drops it, which also
    runs when the test ends."""
    with market.connect("supabase_admin", autocommit=True) as admin:
        admin.execute("create extension if not exists dblink with schema extensions")
        admin.execute(f"create function public.{name}() returns trigger language plpgsql"
                      f" security definer set search_path = '' as $$ begin {body} end $$")
        admin.execute(f"create trigger {name} {when}"
                      f" for each statement execute function public.{name}()")

    def drop() -> None:
        with market.connect("supabase_admin", autocommit=True) as admin:
            admin.execute(f"drop trigger if exists {name} on {when.split(' on ')[-1]}")
            admin.execute(f"drop function if exists public.{name}()")
            admin.execute("drop extension if exists dblink")

    request.addfinalizer(drop)
    return drop


def test_an_order_being_inserted_between_two_runs_of_one_call_holds_back_later_ones(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    """Inside one call, after its first run: an earlier order is still being inserted and
    a later one has committed. The next run cannot take a new horizon (the insert holds
    the intake lock), keeps the last one and so leaves the later order for after the
    earlier: FIFO holds. A test-only trigger on the run's price ticks makes both inserts
    from other sessions (dblink) at exactly that point."""
    users = setup_market(market, ["ONE"], users=2, balance=100000)
    # 16 orders fill the call's first run, so it reads a second one.
    queue_buys(market, [(users[0], "ONE", 10)] * 16)
    insert = ("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
              " values (''{}'', ''ONE'', ''buy'', {})")
    with market.connect("supabase_admin", autocommit=True) as admin:
        # A queued wake, as when the webhook is configured: the inserts only read its state
        # (unconfigured, each insert claims the wake row and the second would wait).
        admin.execute("update pauv.process_queue_wake_state set wake_requested_at = now(),"
                      " wake_timeout = '1 hour'")
    # Fires after the first run's ticks, once.
    drop_test_trigger = install_dblink_trigger(
        market, request, "test_insert_between_runs", "after insert on public.price_history", f"""
            if 'earlier' = any(coalesce(extensions.dblink_get_connections(), '{{}}')) then
                return null;
            end if;
            perform extensions.dblink_connect('earlier', '{market.dsn()}');
            perform extensions.dblink_exec('earlier', 'begin');
            perform extensions.dblink_exec('earlier', '{insert.format(users[0], 5)}');
            perform extensions.dblink_exec(
                '{market.dsn()} options=''-c lock_timeout=2s''', '{insert.format(users[1], 6)}');
            return null;""")
    first = market.connect()
    request.addfinalizer(first.close)
    result = first.execute("select public.process_all_pending_orders()").fetchone()[0]
    assert (result["successful"], result["failed"], result["has_more"]) == (16, 0, True)
    # The earlier order commits, then the caller's transaction.
    first.execute("select extensions.dblink_exec('earlier', 'commit'),"
                  " extensions.dblink_disconnect('earlier')")
    first.commit()
    drop_test_trigger()
    with market.connect(autocommit=True) as service:
        assert dict(service.execute(
            "select amount_usdp, status from public.queue where amount_usdp < 10")) == {
                Decimal("5"): "pending", Decimal("6"): "pending"}
        assert drain(service)["successful"] == 2
        assert executed_amounts(service, "ONE") == [Decimal(10)] * 16 + [Decimal(5), Decimal(6)]
        assert audit(service) == []


def test_a_holding_inserted_behind_the_processors_read_fails_the_call_and_moves_nothing(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    """The processor reads a user's holding under the user's lock and inserts it when there
    was none. Another writer can still insert it in between (its foreign-key check takes a
    lock the processor's does not conflict with): the processor's insert then meets it, the
    call fails with the unique violation and moves nothing, and the next call executes the
    order on the row now there. A test-only trigger on users makes that insert from another
    session (dblink) at exactly that point."""
    (user,) = setup_market(market, ["ONE"], users=1, balance=1000)
    queue_buys(market, [(user, "ONE", 10)])
    # Fires as the processor writes the run's balances, after its read.
    drop_test_trigger = install_dblink_trigger(
        market, request, "test_insert_holding", "before update on public.users", f"""
            perform extensions.dblink_exec('{market.dsn()}',
                'insert into public.portfolio (user_id, ticker) values (''{user}'', ''ONE'')');
            return null;""")
    with market.connect(autocommit=True) as service:
        with pytest.raises(psycopg.errors.UniqueViolation, match="portfolio_pkey"):
            service.execute("select public.process_all_pending_orders()")
        drop_test_trigger()
        state = ("select (select status from public.queue),"
                 " (select usdp_balance from public.users),"
                 " (select (current_supply, total_usdp)::text from public.issuer_trading),"
                 " (select array_agg((pv_amount, avg_cost_basis))::text from public.portfolio),"
                 " (select count(*) from public.transactions)")
        assert service.execute(state).fetchone() == (
            "pending", Decimal(1000), "(0,0)", '{"(0,0)"}', 0)
        assert drain(service)["successful"] == 1
        assert service.execute(state).fetchone()[::4] == ("completed", 1)
        supply, held, basis, balance = service.execute(
            "select t.current_supply, p.pv_amount, p.avg_cost_basis, u.usdp_balance"
            " from public.issuer_trading as t, public.portfolio as p, public.users as u").fetchone()
        assert (held, basis, balance) == (supply, round(Decimal(10) / supply, 12), Decimal(990))
        assert supply > 0
        assert audit(service) == []


def test_a_call_that_meets_a_user_another_caller_holds_ends_there(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    """A call holds the users it executed until it commits. Another call that has executed
    orders and then meets one of them ends (has_more), committing and releasing its own users
    rather than going on to the next ticker; a call that has executed nothing goes on."""
    first, busy, a, b = hold_a_user(market, request, ["ONE", "TWO"], balance=1000)
    # On each ticker: a free user's order, then the held user's, then another free one.
    queue_buys(market, [(a, "ONE", 10), (busy, "ONE", 11), (b, "ONE", 12),
                        (a, "TWO", 10), (busy, "TWO", 11), (b, "TWO", 12)])
    with market.connect(autocommit=True) as second:
        calls = [second.execute("select public.process_all_pending_orders()").fetchone()[0]
                 for _ in range(3)]
        assert [(c["total_processed"], c["has_more"]) for c in calls] == [
            (1, True), (1, True), (0, True)]
        first.commit()
        assert drain(second)["successful"] == 4
        for ticker in ("ONE", "TWO"):
            assert executed_amounts(second, ticker) == [Decimal(10), Decimal(11), Decimal(12)]
        assert audit(second) == []


@pytest.mark.parametrize(("free_orders_first", "locked"), [(3, 16), (20, 64)])
def test_a_run_that_stops_at_a_held_user_has_locked_only_the_slices_it_reached(
    market: Cluster, request: pytest.FixtureRequest, free_orders_first: int, locked: int,
) -> None:
    """A run fetches and locks its orders in slices (16, then up to 64, 256, 1,000 in all).
    One that stops at a user another caller holds keeps only the slices it reached locked
    until its call commits: a cancel of a later order, or another caller, does not wait."""
    first, busy, a, b = hold_a_user(market, request, ["ONE"], balance=1000)
    queue_buys(market, [(a, "ONE", 1)] * free_orders_first + [(busy, "ONE", 2)]
               + [(b, "ONE", 3)] * (99 - free_orders_first))
    second = market.connect()
    request.addfinalizer(second.close)
    assert second.execute("select public.process_all_pending_orders()").fetchone()[0][
        "successful"] == free_orders_first
    with market.connect(autocommit=True) as third:
        free = third.execute(
            "select count(*) from (select q.id from public.queue as q"
            " where q.ticker = 'ONE' and q.status = 'pending'"
            " for update skip locked) as s").fetchone()[0]
        assert free == 100 - locked
        second.commit()
        first.commit()
        assert drain(third)["successful"] == 100 - free_orders_first
        assert executed_amounts(third, "ONE") == (
            [Decimal(1)] * free_orders_first + [Decimal(2)]
            + [Decimal(3)] * (99 - free_orders_first))
        assert audit(third) == []


def test_the_call_after_one_that_met_another_callers_user_does_at_most_200_orders(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    """A session whose call met a user another caller held makes its next call at most 200
    orders, whatever it asks for (has_more stays true): calls hold fewer users while callers
    collide. The call after one that met nobody has its whole budget again."""
    first, busy, a, b = hold_a_user(market, request, ["ONE", "TWO"], balance=100_000)
    queue_buys(market, [(a, "ONE", 10), (busy, "ONE", 11)])
    with market.connect(autocommit=True) as second:
        def call() -> tuple[int, bool]:
            r = second.execute("select public.process_all_pending_orders(1000)").fetchone()[0]
            return r["total_processed"], r["has_more"]

        assert call() == (1, True)  # met `busy`
        first.commit()
        second.execute(
            "insert into public.queue (user_id, ticker, order_type, amount_usdp)"
            " select %s, 'TWO', 'buy', 1 from generate_series(1, 600)", (b,))
        assert call() == (200, True)
        assert call() == (401, False)
        assert executed_amounts(second, "ONE") == [Decimal(10), Decimal(11)]
        assert len(executed_amounts(second, "TWO")) == 600
        assert audit(second) == []
