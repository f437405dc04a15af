"""The pg_cron schedules: exactly the expected jobs after a push and after pushing again,
scheduling is idempotent, every job's command runs by hand, pg_cron really fires a job, the
job-health view, and a push into a database without pg_cron succeeds and says what to do."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from conftest import ROOT, Cluster, audit, new_issuer, new_user

EXPECTED_JOBS = [
    ("cleanup-old-queue-entries", "0 3 * * *", "call pauv.run_cleanup_old_queue_entries()"),
    ("hourly-price-snapshot", "0 * * * *", "select public.snapshot_hourly_prices()"),
    ("process-pending-orders-sweeper", "* * * * *", "call pauv.sweep_pending_orders()"),
    ("purge-cron-job-run-details", "30 3 * * *", "select pauv.purge_cron_job_run_details()"),
    ("refresh-issuer-stats-cache", "*/5 * * * *", "select public.refresh_issuer_stats_cache()"),
]


def cron_jobs(cluster: Cluster) -> list[tuple]:
    """Every job of every role (as the superuser, past pg_cron's row security)."""
    with cluster.connect("supabase_admin") as admin:
        return admin.execute(
            "select jobid, jobname, schedule, command, username, database from cron.job"
            " order by jobname"
        ).fetchall()


def test_exactly_the_expected_jobs_are_scheduled_for_postgres(cluster: Cluster) -> None:
    jobs = cron_jobs(cluster)
    assert [(j[1], j[2], j[3]) for j in jobs] == EXPECTED_JOBS
    assert {(j[4], j[5]) for j in jobs} == {("postgres", "postgres")}


def test_pushing_again_changes_no_job(cluster: Cluster) -> None:
    before = cron_jobs(cluster)
    proc = cluster.push_migrations()
    assert proc.returncode == 0, proc.stderr
    assert cron_jobs(cluster) == before


def test_scheduling_again_is_idempotent_and_repairs_drift(cluster: Cluster) -> None:
    before = cron_jobs(cluster)
    with cluster.connect(autocommit=True) as conn:
        assert conn.execute(
            "select jobname, action from pauv.schedule_jobs() order by jobname"
        ).fetchall() == [(name, "unchanged") for name, _, _ in EXPECTED_JOBS]
        # Someone edited a schedule by hand: the next call puts it back, in place.
        conn.execute("select cron.alter_job(jobid, schedule => '*/7 * * * *') from cron.job"
                     " where jobname = 'refresh-issuer-stats-cache'")
        actions = dict(conn.execute("select jobname, action from pauv.schedule_jobs()").fetchall())
        assert actions["refresh-issuer-stats-cache"] == "updated"
    after = cron_jobs(cluster)
    assert after == before
    with cluster.connect("supabase_admin") as admin:
        # Scheduling left the jobs switched off as the test harness set them.
        assert admin.execute("select bool_or(active) from cron.job").fetchone()[0] is False


def test_re_running_the_schedule_migration_duplicates_nothing(cluster: Cluster) -> None:
    """What `db reset` or re-applying the file does: the scheduling call runs again."""
    before = cron_jobs(cluster)
    sql = (ROOT / "supabase" / "migrations" / "20261128140800_schedule_jobs.sql").read_text()
    call = sql[sql.index("select\n    s.jobname"):]
    with cluster.connect(autocommit=True) as conn:
        conn.execute(call)
    assert cron_jobs(cluster) == before


def test_one_call_schedules_every_job_once_pg_cron_is_there(cluster: Cluster) -> None:
    """After enabling pg_cron on a project pushed without it, one call schedules everything.
    Done in one transaction that also switches the new jobs off, so they never fire here."""
    with cluster.connect() as conn:
        for name, _, _ in EXPECTED_JOBS:
            conn.execute("select cron.unschedule(%s)", (name,))
        assert conn.execute("select count(*) from cron.job").fetchone()[0] == 0
        assert conn.execute(
            "select jobname, action from pauv.schedule_jobs() order by jobname"
        ).fetchall() == [(name, "scheduled") for name, _, _ in EXPECTED_JOBS]
        conn.execute("update cron.job set active = false")
        conn.commit()
    assert [(j[1], j[2], j[3]) for j in cron_jobs(cluster)] == EXPECTED_JOBS


@pytest.mark.parametrize("jobname", [j[0] for j in EXPECTED_JOBS])
def test_each_job_command_runs_by_hand(market: Cluster, jobname: str) -> None:
    with market.connect(autocommit=True) as conn:
        new_issuer(conn, "RUN")
        command = conn.execute(
            "select command from cron.job where jobname = %s", (jobname,)
        ).fetchone()[0]
        conn.execute(command)
        if jobname == "refresh-issuer-stats-cache":
            assert conn.execute(
                "select ticker from public.issuer_stats_cache"
            ).fetchall() == [("RUN",)]


def test_the_sweeper_says_what_is_missing(db: psycopg.Connection) -> None:
    # Rolled back with the test: the processor briefly goes missing.
    db.execute("alter function public.process_all_pending_orders(integer, numeric, timestamptz)"
               " rename to process_all_pending_orders_hidden")
    with pytest.raises(psycopg.errors.UndefinedFunction,
                       match=r"public.process_all_pending_orders\(\) does not exist"):
        db.execute("call pauv.sweep_pending_orders()")


def test_job_health_reports_last_run_and_failures(market: Cluster) -> None:
    with market.connect("supabase_admin", autocommit=True) as admin:
        jobid = admin.execute(
            "select jobid from cron.job where jobname = 'hourly-price-snapshot'"
        ).fetchone()[0]
        admin.execute("delete from cron.job_run_details where jobid = %s", (jobid,))
        admin.execute(
            "insert into cron.job_run_details (jobid, runid, job_pid, database, username,"
            " command, status, return_message, start_time, end_time) values"
            " (%(j)s, 910001, 1, 'postgres', 'postgres', 'x', 'failed', 'old failure',"
            "  now() - interval '30 hours', now() - interval '30 hours'),"
            " (%(j)s, 910002, 1, 'postgres', 'postgres', 'x', 'failed', 'division by zero',"
            "  now() - interval '2 hours', now() - interval '2 hours' + interval '3 seconds'),"
            " (%(j)s, 910003, 1, 'postgres', 'postgres', 'x', 'succeeded', '1 row',"
            "  now() - interval '1 hour', now() - interval '1 hour' + interval '250 ms')",
            {"j": jobid},
        )
        try:
            with market.connect() as conn:
                row = conn.execute(
                    "select jobname, active, last_status, last_duration, last_error,"
                    " runs_24h, failures_24h from pauv.cron_job_health where jobid = %s",
                    (jobid,),
                ).fetchone()
            assert row[:3] == ("hourly-price-snapshot", False, "succeeded")
            assert row[3].total_seconds() == 0.25
            assert row[4:] == ("division by zero", 2, 1)
        finally:
            admin.execute("delete from cron.job_run_details where jobid = %s", (jobid,))


def test_operator_views_are_hidden_from_the_api_roles(db: psycopg.Connection) -> None:
    for role in ("anon", "authenticated"):
        for view in ("pauv.queue_status", "pauv.queue_lag", "pauv.cron_job_health"):
            assert db.execute("select has_table_privilege(%s, %s, 'select')",
                              (role, view)).fetchone()[0] is False, (role, view)


@pytest.mark.slow
def test_pg_cron_really_runs_the_refresh(market: Cluster) -> None:
    """The scheduler fires a job (the refresh command, every minute) as postgres in a
    background worker; waits for the next minute boundary, at most about 75 s."""
    name = f"pauv-test-refresh-{uuid.uuid4().hex[:8]}"
    with market.connect(autocommit=True) as conn:
        new_issuer(conn, "CRON")
        jobid = conn.execute(
            "select cron.schedule(%s, '* * * * *', 'select public.refresh_issuer_stats_cache()')",
            (name,),
        ).fetchone()[0]
        # The harness makes new jobs start inactive: this one is meant to fire.
        conn.execute("select cron.alter_job(%s, active => true)", (jobid,))
        try:
            status = None
            deadline = time.monotonic() + 80
            while time.monotonic() < deadline:
                status = conn.execute(
                    "select status, username from cron.job_run_details where jobid = %s"
                    " and status in ('succeeded', 'failed') order by runid limit 1", (jobid,),
                ).fetchone()
                if status:
                    break
                time.sleep(1)
            assert status == ("succeeded", "postgres")
            assert conn.execute(
                "select ticker from public.issuer_stats_cache"
            ).fetchall() == [("CRON",)]
            assert conn.execute(
                "select last_status from pauv.cron_job_health where jobid = %s", (jobid,)
            ).fetchone()[0] == "succeeded"
        finally:
            conn.execute("select cron.unschedule(%s::bigint)", (jobid,))
            conn.execute("delete from cron.job_run_details where jobid = %s", (jobid,))


# --- a database without pg_cron ------------------------------------------------------------

def prepare_database_without_pg_cron(cluster: Cluster, dbname: str) -> None:
    """A second project-like database in the test cluster: the platform files applied to it,
    where the cluster-wide parts (roles) already exist and pg_cron cannot be created
    (it lives only in cron.database_name): exactly the missing-pg_cron case."""
    with cluster.connect("supabase_admin", autocommit=True) as admin:
        admin.execute(f'create database "{dbname}" owner postgres')
        admin.execute(f'alter database "{dbname}" set search_path to "$user", public, extensions')
    for path in sorted((ROOT / "tests" / "platform").glob("*.sql")):
        proc = subprocess.run(
            ["psql", "-X", "-q", "--dbname", cluster.url("supabase_admin", dbname),
             "-f", str(path)],
            capture_output=True, text=True, check=False,
        )
        errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
        expected = ("already exists", "can only create extension in database postgres",
                    'schema "cron" does not exist')
        unexpected = [e for e in errors if not any(x in e for x in expected)]
        assert unexpected == [], proc.stderr


def test_push_without_pg_cron_succeeds_and_says_how_to_enable_it(cluster: Cluster) -> None:
    dbname = f"nocron_{uuid.uuid4().hex[:8]}"
    prepare_database_without_pg_cron(cluster, dbname)
    try:
        proc = cluster.push_migrations(dbname)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # The CLI does not echo server messages; the server log (the project's Postgres logs
        # on Supabase) has the warning and its hint.
        log = (Path(cluster.socket_dir) / "server.log").read_text(errors="replace")
        assert "WARNING:  pg_cron is not enabled, so the Pauv background jobs are not" \
            " scheduled" in log
        assert "select * from pauv.schedule_jobs();" in log
        with cluster.connect(dbname=dbname, autocommit=True) as conn:
            assert conn.execute(
                "select count(*) from pg_extension where extname = 'pg_cron'"
            ).fetchone()[0] == 0
            assert conn.execute("select to_regclass('pauv.cron_job_health')").fetchone()[0] \
                is None
            warnings: list[tuple[str, str]] = []
            conn.add_notice_handler(lambda d: warnings.append((d.message_primary, d.message_hint)))
            assert conn.execute("select * from pauv.schedule_jobs()").fetchall() == []
            assert warnings[0][0] == ("pg_cron is not enabled, so the Pauv background jobs are"
                                      " not scheduled")
            assert "select * from pauv.schedule_jobs();" in warnings[0][1]
            # Everything else works without the scheduler.
            conn.execute("insert into public.issuer_details (ticker, name) values ('X', 'X')")
            conn.execute("insert into public.issuer_trading (ticker) values ('X')")
            assert conn.execute("select refresh_issuer_stats_cache()").fetchone()[0] == 1
            assert conn.execute("select public.snapshot_hourly_prices()").fetchone()[0] == 0
            assert conn.execute(
                "select public.cleanup_old_queue_entries()"
            ).fetchone()[0]["deleted"] == 0
    finally:
        with cluster.connect("supabase_admin", autocommit=True) as admin:
            admin.execute(f'drop database "{dbname}" with (force)')


# --- the sweeper -----------------------------------------------------------------------------

def test_the_sweeper_drains_pending_orders_in_committed_calls(market: Cluster) -> None:
    """2,500 pending orders: the sweeper calls the processor three times (1,000 orders a
    call), each call committed on its own, and reports what it did."""
    with market.connect(autocommit=True) as conn:
        for ticker in ("SWA", "SWB", "SWC", "SWD", "SWE"):
            new_issuer(conn, ticker)
        users = [new_user(conn, balance=1000) for _ in range(50)]
        conn.execute(
            "insert into public.queue (user_id, ticker, order_type, amount_usdp)"
            " select u.id, t.ticker, 'buy', 1"
            " from unnest(%s::uuid[]) as u (id)"
            " cross join unnest(array['SWA', 'SWB', 'SWC', 'SWD', 'SWE']) as t (ticker)"
            " cross join generate_series(1, 10)",
            (users,),
        )
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("call pauv.sweep_pending_orders()")
        assert notices == [
            "process-pending-orders-sweeper: 2500 orders processed (0 failed) in 3 calls"]
        assert conn.execute(
            "select status, count(*) from public.queue group by status"
        ).fetchall() == [("completed", 2500)]
        # One transaction per call: the trades carry three distinct transaction times.
        assert conn.execute(
            "select count(distinct processed_at) from public.queue"
        ).fetchone()[0] == 3
        assert audit(conn) == []
