"""cleanup_old_queue_entries(): only finished rows older than the retention go, oldest first,
in bounded batches; pending and processing orders and every transactions row stay. The job's
procedure commits batch by batch; the pg_cron history purge keeps the last 7 days."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import psycopg
import pytest

from conftest import Cluster, as_role, new_issuer, new_user
from jobs_support import at, trade

NOW = at("2026-03-20 03:00")


def order(conn: psycopg.Connection, user, status: str, age: timedelta | None,
          placed: datetime | None = None) -> int:
    """A queue row in `status`, finished `age` before NOW (pending ones have no finish)."""
    placed = placed or NOW - (age or timedelta(0)) - timedelta(minutes=1)
    return conn.execute(
        "insert into public.queue (user_id, ticker, order_type, amount_usdp, status, date,"
        " processed_at, error_message) values (%s, 'Q', 'buy', 10, %s, %s, %s, %s) returning id",
        (user, status, placed, None if age is None else NOW - age,
         "amount too small" if status == "failed" else None),
    ).fetchone()[0]


def build_queue(conn: psycopg.Connection) -> dict[str, int]:
    user = new_user(conn)
    new_issuer(conn, "Q")
    week = timedelta(days=7)
    ids = {
        "pending_old": order(conn, user, "pending", None, placed=NOW - timedelta(days=30)),
        "processing_old": order(conn, user, "processing", None, placed=NOW - timedelta(days=30)),
        "completed_9d": order(conn, user, "completed", week + timedelta(days=2)),
        "failed_8d": order(conn, user, "failed", week + timedelta(days=1)),
        "cancelled_7d_1us": order(conn, user, "cancelled", week + timedelta(microseconds=1)),
        "completed_exactly_7d": order(conn, user, "completed", week),
        "completed_1d": order(conn, user, "completed", timedelta(days=1)),
    }
    # The completed ones executed trades; their transactions must outlive the queue rows.
    for name in ("completed_9d", "completed_exactly_7d", "completed_1d"):
        conn.execute(
            "insert into public.transactions (user_id, amount_usdp, ticker, order_type,"
            " avg_price_paid, pv_traded, start_price, end_price, date, queue_id)"
            " values (%s, 10, 'Q', 'buy', 1, 10, 1, 1.1, %s, %s)",
            (user, NOW - timedelta(days=9), ids[name]),
        )
    return ids


def remaining(conn: psycopg.Connection, ids: dict[str, int]) -> list[str]:
    left = {r[0] for r in conn.execute("select id from public.queue").fetchall()}
    return sorted(name for name, i in ids.items() if i in left)


def cleanup(conn: psycopg.Connection, batch: int = 10000) -> dict:
    return conn.execute(
        "select public.cleanup_old_queue_entries(p_batch_size => %s, p_now => %s)", (batch, NOW)
    ).fetchone()[0]


# Fabricates queue rows in every status (completed without a trade, 'processing') to
# prove cleanup's reach: states the engine never leaves, so no closing audit.
@pytest.mark.breaks_invariants
def test_only_finished_rows_older_than_7_days_go(db: psycopg.Connection) -> None:
    ids = build_queue(db)
    assert cleanup(db) == {"deleted": 3, "completed": 1, "failed": 1, "cancelled": 1,
                           "has_more": False}
    # A row finished exactly 7 days ago is not older than the retention: it stays.
    assert remaining(db, ids) == ["completed_1d", "completed_exactly_7d", "pending_old",
                                  "processing_old"]
    assert db.execute("select count(*) from public.transactions").fetchone()[0] == 3
    assert cleanup(db) == {"deleted": 0, "completed": 0, "failed": 0, "cancelled": 0,
                           "has_more": False}


# Fabricates queue rows in every status (completed without a trade, 'processing') to
# prove cleanup's reach: states the engine never leaves, so no closing audit.
@pytest.mark.breaks_invariants
def test_batches_are_bounded_and_oldest_first(db: psycopg.Connection) -> None:
    ids = build_queue(db)
    assert cleanup(db, batch=2) == {"deleted": 2, "completed": 1, "failed": 1, "cancelled": 0,
                                    "has_more": True}
    assert "cancelled_7d_1us" in remaining(db, ids)
    assert cleanup(db, batch=2) == {"deleted": 1, "completed": 0, "failed": 0, "cancelled": 1,
                                    "has_more": False}


# Fabricates queue rows in every status (completed without a trade, 'processing') to
# prove cleanup's reach: states the engine never leaves, so no closing audit.
@pytest.mark.breaks_invariants
def test_a_custom_retention(db: psycopg.Connection) -> None:
    ids = build_queue(db)
    result = db.execute(
        "select public.cleanup_old_queue_entries('12 hours', 10000, %s)", (NOW,)
    ).fetchone()[0]
    assert result["deleted"] == 5
    assert remaining(db, ids) == ["pending_old", "processing_old"]


@pytest.mark.parametrize(("args", "message"), [
    ("'30 minutes'::interval, 10", "p_retention must be at least 1 hour"),
    ("null::interval, 10", "p_retention must be at least 1 hour"),
    ("'7 days'::interval, 0", "p_batch_size must be from 1 to 100000"),
    ("'7 days'::interval, 100001", "p_batch_size must be from 1 to 100000"),
])
def test_bad_arguments_are_rejected(db: psycopg.Connection, args: str, message: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        db.execute(f"select public.cleanup_old_queue_entries({args})")


def test_a_real_trade_survives_its_queue_row(db: psycopg.Connection) -> None:
    user = new_user(db)
    new_issuer(db, "Q")
    trade(db, "Q", user, "buy", 10, NOW - timedelta(days=10))
    assert cleanup(db)["deleted"] == 1
    assert db.execute("select count(*) from public.queue").fetchone()[0] == 0
    assert db.execute(
        "select ticker, amount_usdp, pv_traded from public.transactions"
    ).fetchall() == [("Q", 10.5, 10)]
    assert db.execute("select count(*) from public.price_history").fetchone()[0] == 1


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_cannot_clean_up(db: psycopg.Connection, role: str) -> None:
    with as_role(db, role), pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("select public.cleanup_old_queue_entries()")


def test_the_job_procedure_commits_batch_by_batch(market: Cluster) -> None:
    with market.connect(autocommit=True) as conn:
        user = new_user(conn)
        new_issuer(conn, "Q")
        for days in (8, 9, 10, 11, 12):
            conn.execute(
                "insert into public.queue (user_id, ticker, order_type, amount_usdp, status,"
                " date, processed_at) values (%s, 'Q', 'buy', 1, 'completed',"
                " now() - make_interval(days => %s), now() - make_interval(days => %s))",
                (user, days, days),
            )
        pending = order(conn, user, "pending", None, placed=NOW - timedelta(days=30))
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("call pauv.run_cleanup_old_queue_entries(p_batch_size => 2)")
        assert notices == ["cleanup-old-queue-entries: deleted 5 queue rows in 3 batches"]
        assert conn.execute("select array_agg(id) from public.queue").fetchone()[0] == [pending]


# Fabricates queue rows in every status (completed without a trade, 'processing') to
# prove cleanup's reach: states the engine never leaves, so no closing audit.
@pytest.mark.breaks_invariants
def test_rows_locked_by_another_session_are_left_for_next_time(market: Cluster) -> None:
    with market.connect(autocommit=True) as conn:
        ids = build_queue(conn)
    with market.connect() as holder, market.connect() as cleaner:
        holder.execute("select * from public.queue where id = %s for update", (ids["failed_8d"],))
        cleaner.execute("set lock_timeout = '2s'")
        result = cleanup(cleaner)
        assert (result["deleted"], result["failed"], result["has_more"]) == (2, 0, True)
        cleaner.commit()
        holder.rollback()


def test_purge_keeps_the_last_7_days_of_cron_history(market: Cluster) -> None:
    with market.connect("supabase_admin", autocommit=True) as admin:
        admin.execute("delete from cron.job_run_details where runid >= 900000")
        admin.execute(
            "insert into cron.job_run_details (jobid, runid, job_pid, database, username,"
            " command, status, return_message, start_time, end_time) values"
            " (1, 900001, 1, 'postgres', 'postgres', 'select 1', 'succeeded', '1 row',"
            "  now() - interval '8 days', now() - interval '8 days'),"
            " (1, 900002, 1, 'postgres', 'postgres', 'select 1', 'running', null,"
            "  now() - interval '9 days', null),"
            " (1, 900003, 1, 'postgres', 'postgres', 'select 1', 'failed', 'boom',"
            "  now() - interval '6 days', now() - interval '6 days')"
        )
        try:
            with market.connect(autocommit=True) as conn:
                assert conn.execute(
                    "select pauv.purge_cron_job_run_details()"
                ).fetchone()[0] >= 2
            assert admin.execute(
                "select array_agg(runid order by runid) from cron.job_run_details"
                " where runid >= 900000"
            ).fetchone()[0] == [900003]
        finally:
            admin.execute("delete from cron.job_run_details where runid >= 900000")


def test_cleanup_result_is_json(db: psycopg.Connection) -> None:
    raw = db.execute("select public.cleanup_old_queue_entries()::text").fetchone()[0]
    assert json.loads(raw) == {"deleted": 0, "completed": 0, "failed": 0, "cancelled": 0,
                               "has_more": False}
