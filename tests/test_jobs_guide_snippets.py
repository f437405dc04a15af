"""Every SQL snippet of the setup guide (BACKGROUND_JOBS_SETUP.md) about the jobs runs as
written: "Step 6" (the stats cache part), "Monitoring", "Troubleshooting" and "Manually Run
Jobs". The snippets are copied verbatim, whitespace included."""

from __future__ import annotations

import psycopg
import pytest

from conftest import new_issuer

STEP_6_STATS = [
    "SELECT refresh_issuer_stats_cache();",
    "SELECT * FROM public.issuer_stats_cache;",
    "SELECT jobid, jobname, schedule, command FROM cron.job;",
]

MONITORING = [
    """SELECT 
    jobid,
    runid,
    job_pid,
    database,
    username,
    command,
    status,
    return_message,
    start_time,
    end_time
FROM cron.job_run_details 
ORDER BY start_time DESC 
LIMIT 20;""",
    """SELECT 
    status, 
    COUNT(*) as count,
    MIN(date) as oldest,
    MAX(date) as newest
FROM public.queue 
GROUP BY status;""",
]

TROUBLESHOOTING = [
    "SELECT * FROM pg_extension WHERE extname = 'pg_cron';",
    "SELECT * FROM cron.job WHERE jobname = 'refresh-issuer-stats-cache';",
    """SELECT * FROM cron.job_run_details 
   WHERE jobid = (SELECT jobid FROM cron.job WHERE jobname = 'refresh-issuer-stats-cache')
   ORDER BY start_time DESC 
   LIMIT 5;""",
]

MANUALLY_RUN_REFRESH = """-- Refresh stats cache manually
SELECT refresh_issuer_stats_cache();"""

MANUALLY_RUN_PROCESS = """-- Process all pending queue orders manually
SELECT process_all_pending_orders();"""


@pytest.mark.parametrize("snippet", STEP_6_STATS + MONITORING + TROUBLESHOOTING,
                         ids=lambda s: " ".join(s.split())[:60])
def test_guide_snippet_runs_as_written(db: psycopg.Connection, snippet: str) -> None:
    new_issuer(db, "AAPL")
    db.execute("SELECT refresh_issuer_stats_cache();")
    cur = db.execute(snippet)
    assert cur.description is not None  # a query with a result, and it ran
    cur.fetchall()


def test_step_6_shows_the_refreshed_cache_and_the_jobs(db: psycopg.Connection) -> None:
    new_issuer(db, "AAPL")
    assert db.execute(STEP_6_STATS[0]).fetchone() == (1,)
    rows = db.execute(STEP_6_STATS[1]).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("AAPL", 1)]
    jobs = {r[1]: r[2] for r in db.execute(STEP_6_STATS[2]).fetchall()}
    assert jobs["refresh-issuer-stats-cache"] == "*/5 * * * *"
    assert jobs["hourly-price-snapshot"] == "0 * * * *"
    assert jobs["cleanup-old-queue-entries"] == "0 3 * * *"


def test_troubleshooting_finds_pg_cron_and_the_refresh_job(db: psycopg.Connection) -> None:
    assert len(db.execute(TROUBLESHOOTING[0]).fetchall()) == 1
    job = db.execute(TROUBLESHOOTING[1]).fetchall()
    assert len(job) == 1
    assert job[0][1:3] == ("*/5 * * * *", "select public.refresh_issuer_stats_cache()")


def test_manually_refresh_stats(db: psycopg.Connection) -> None:
    new_issuer(db, "AAPL")
    assert db.execute(MANUALLY_RUN_REFRESH).fetchone() == (1,)


def test_manually_process_pending_orders(db: psycopg.Connection) -> None:
    result = db.execute(MANUALLY_RUN_PROCESS).fetchone()[0]
    assert result["total_processed"] == 0
