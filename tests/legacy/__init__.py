"""Pauv's live (legacy) database as a test fixture: the platform extras and the schema
upstream's 59 migrations leave (tests/legacy/*.sql), a market built only through that
schema's own rules, bulk fabrication for the benchmark, and a whole-database checksum.
Facts: /work/shared/legacy/PAUV_LEGACY_SCHEMA.md (§ numbers below refer to it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import ROOT, Cluster

LEGACY = Path(__file__).resolve().parent
PLATFORM_EXTRAS = LEGACY / "platform_extras.sql"
SCHEMA = LEGACY / "schema.sql"


def _psql(cluster: Cluster, user: str, path: Path) -> None:
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", cluster.host, "-p",
         str(cluster.port), "-U", user, "-d", "postgres", "-f", str(path)],
        check=True, capture_output=True, text=True,
    )


def apply_legacy_schema(cluster: Cluster, *, jobs_active: bool = False) -> None:
    """On a cluster prepared with push=False: the platform extras as supabase_admin, then
    the legacy schema as 'postgres' (not a superuser, as the CLI on hosted). Its four cron
    jobs start inactive (as throwaway_cluster leaves ours) unless jobs_active."""
    _psql(cluster, "supabase_admin", PLATFORM_EXTRAS)
    _psql(cluster, "postgres", SCHEMA)
    if not jobs_active:
        with cluster.connect("supabase_admin", autocommit=True) as conn:
            conn.execute("update cron.job set active = false")


def cli_push(cluster: Cluster) -> subprocess.CompletedProcess:
    """`supabase db push` of our package onto the cluster (what an adoption would run)."""
    return cluster.push_migrations()


__all__ = ["ROOT", "apply_legacy_schema", "cli_push"]
