"""p_now is validated (issue 11 item 6): every function taking it refuses NULL, infinities and
times outside its window with SQLSTATE 22023, before doing anything. The window is
[now() - 1 day, now() + 1 hour] for the order processor and [now() - 31 days,
now() + 1 hour] for the jobs and get_ohlc_data (pauv.checked_now)."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from conftest import new_issuer, new_user

# Each call takes p_now as its one parameter.
PROCESSOR = {
    "process_all_pending_orders":
        "select public.process_all_pending_orders(1000, 5, %s)",
    "process_next_queue_order": "select public.process_next_queue_order(%s)",
    "process_ticker_orders":
        "select count(*) from pauv.process_ticker_orders('NOW', 1000, 'infinity', %s)",
}
JOBS = {
    "refresh_issuer_stats_cache": "select public.refresh_issuer_stats_cache(%s)",
    "snapshot_hourly_prices": "select public.snapshot_hourly_prices('7 days', %s)",
    "cleanup_old_queue_entries": "select public.cleanup_old_queue_entries('7 days', 10000, %s)",
    "purge_cron_job_run_details": "select pauv.purge_cron_job_run_details('7 days', %s)",
    "get_ohlc_data":
        "select count(*) from public.get_ohlc_data('NOW', '1 hour', now() - interval '2 days',"
        " now() + interval '2 days', %s)",
}
BAD = [None, "infinity", "-infinity", "1900-01-01 00:00+00", "3000-01-01 00:00+00"]


def market_with_work(db: psycopg.Connection) -> None:
    """A pending order, a finished one old enough to clean, trades to snapshot and cache."""
    new_issuer(db, "NOW")
    user = new_user(db, balance=1000)
    db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                " values (%s, 'NOW', 'buy', 10.5)", (user,))
    db.execute("select public.process_all_pending_orders(1000, 5, now() - interval '3 hours')")
    db.execute("update public.queue set processed_at = now() - interval '20 days'")
    db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                " values (%s, 'NOW', 'buy', 10)", (user,))


def state(db: psycopg.Connection) -> tuple:
    return db.execute(
        "select (select array_agg((id, status, processed_at) order by id)::text from public.queue),"
        " (select array_agg((user_id, usdp_balance) order by user_id)::text from public.users),"
        " (select count(*) from public.transactions),"
        " (select array_agg((ticker, current_supply, total_usdp))::text"
        "  from public.issuer_trading),"
        " (select count(*) from public.issuer_stats_cache),"
        " (select count(*) from public.price_candles_hourly)"
    ).fetchone()


@pytest.mark.parametrize("bad", BAD, ids=["null", "infinity", "-infinity", "1900", "3000"])
@pytest.mark.parametrize("name", [*PROCESSOR, *JOBS])
def test_a_p_now_out_of_its_window_is_refused_with_22023_and_moves_nothing(db, name, bad) -> None:
    market_with_work(db)
    before = state(db)
    db.execute("savepoint call")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        db.execute({**PROCESSOR, **JOBS}[name], (bad,))
    assert err.value.sqlstate == "22023"
    assert "p_now must be a finite time from" in str(err.value)
    shown = {None: "null", "infinity": "infinity", "-infinity": "-infinity"}.get(bad, bad and bad[:5])
    assert f"got {shown}" in str(err.value)
    db.execute("rollback to savepoint call")
    assert state(db) == before


@pytest.mark.parametrize(("name", "inside", "outside"), [
    *[(n, "now() - interval '1 day'", "now() - interval '1 day 1 second'") for n in PROCESSOR],
    *[(n, "now() + interval '1 hour'", "now() + interval '1 hour 1 second'") for n in PROCESSOR],
    *[(n, "now() - interval '31 days'", "now() - interval '31 days 1 second'") for n in JOBS],
    *[(n, "now() + interval '1 hour'", "now() + interval '1 hour 1 second'") for n in JOBS],
])
def test_the_window_edges(db, name, inside, outside) -> None:
    market_with_work(db)
    call = {**PROCESSOR, **JOBS}[name]
    db.execute(call.replace("%s", inside))
    db.execute("savepoint call")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute(call.replace("%s", outside))
    db.execute("rollback to savepoint call")


def test_the_processor_stamps_a_time_within_its_window(db) -> None:
    market_with_work(db)
    result = db.execute(
        "select public.process_all_pending_orders(1000, 5, now() - interval '23 hours')"
    ).fetchone()[0]
    assert (result["successful"], result["failed"]) == (1, 0)
    assert db.execute(
        "select amount_usdp, date = now() - interval '23 hours' from public.transactions"
        " order by id desc limit 1").fetchone() == (Decimal("10"), True)
