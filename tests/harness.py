"""A throwaway PostgreSQL prepared like a Supabase project, migrated by the real Supabase
CLI: shared by the pytest fixtures (tests/conftest.py) and the benchmark (tests/bench.py),
so the cluster is started one way only."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from pytest_postgresql.executors.proc import PostgreSQLExecutor

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "supabase" / "migrations"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_options() -> str:
    """The throwaway settings (no disk flushes): this cluster is deleted after the run."""
    out = subprocess.check_output(
        [str(ROOT / "scripts" / "server-options.sh"), "throwaway"], text=True
    )
    return " " + " ".join(out.split())


class Cluster:
    """A running throwaway cluster: how to reach it as each role."""

    def __init__(self, host: str, port: int, socket_dir: str):
        self.host = host
        self.port = port
        self.socket_dir = socket_dir

    def dsn(self, user: str = "postgres", dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={user} dbname={dbname} sslmode=disable"

    def url(self, user: str = "postgres", dbname: str = "postgres") -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}?sslmode=disable"

    def connect(self, user: str = "postgres", dbname: str = "postgres", **kw) -> psycopg.Connection:
        return psycopg.connect(self.dsn(user, dbname), **kw)

    def push_migrations(self, dbname: str = "postgres") -> subprocess.CompletedProcess:
        """`supabase db push` with the real CLI, as the non-superuser 'postgres'."""
        return subprocess.run(
            [str(ROOT / "node_modules" / ".bin" / "supabase"), "db", "push",
             "--db-url", self.url("postgres", dbname), "--yes"],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )


# Written into each throwaway cluster's folder: the pid of the process that made it.
OWNER_FILE = "owner.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphaned_clusters(prefix: str) -> list[str]:
    """Stop and delete the throwaway clusters under `prefix` whose maker is gone: a test or
    bench process killed before its `finally` left a postgres running and its folder behind.
    A folder without a readable owner file (not ours, or being made right now) or whose
    owner is alive is left alone. Returns the folders removed."""
    removed = []
    for base in sorted(glob.glob(os.path.join(tempfile.gettempdir(), prefix + "*"))):
        try:
            with open(os.path.join(base, OWNER_FILE)) as f:
                owner = int(f.read())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        datadir = os.path.join(base, "data")
        if os.path.exists(os.path.join(datadir, "postmaster.pid")):
            subprocess.run([str(ROOT / "tests" / "bin" / "pg_ctl"), "stop", "-D", datadir,
                            "-m", "immediate", "-w"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
        removed.append(base)
    return removed


@contextlib.contextmanager
def throwaway_cluster(prefix: str = "pauv-test-", extra_options: str = "", *,
                      push: bool = True) -> Iterator[Cluster]:
    """Start a cluster on a free port, prepare it (scripts/prepare-db.sh: platform
    stand-ins, then `supabase db push` unless push=False), switch every cron job off (and
    every job scheduled later) so none races the caller, and remove it all on exit. Raises CalledProcessError when
    preparing fails. First removes the clusters of this prefix whose maker was killed
    (reap_orphaned_clusters)."""
    reap_orphaned_clusters(prefix)
    base = tempfile.mkdtemp(prefix=prefix)
    with open(os.path.join(base, OWNER_FILE), "w") as f:
        f.write(str(os.getpid()))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = free_port()
    executor = PostgreSQLExecutor(
        executable=str(ROOT / "tests" / "bin" / "pg_ctl"),
        host="127.0.0.1",
        port=port,
        datadir=os.path.join(base, "data"),
        unixsocketdir=base,
        logfile=os.path.join(base, "server.log"),
        startparams="-w",
        dbname="postgres",
        user="supabase_admin",
        postgres_options=server_options() + (" " + extra_options if extra_options else ""),
    )
    executor.start()
    try:
        subprocess.run(
            [str(ROOT / "scripts" / "prepare-db.sh"), "127.0.0.1", str(port)]
            + ([] if push else ["platform-only"]),
            check=True, capture_output=True, text=True,
        )
        c = Cluster("127.0.0.1", port, base)
        # The scheduler runs for real, but its jobs start inactive so they cannot race
        # the caller (the sweeper would drain orders left pending), including jobs
        # scheduled later, e.g. by `make adopt` onto a legacy cluster (a trigger on
        # cron.job, this cluster only). Whoever needs a job to fire switches it on.
        with c.connect("supabase_admin", autocommit=True) as conn:
            conn.execute("update cron.job set active = false")
            conn.execute(
                "create function cron.harness_new_jobs_start_inactive() returns trigger"
                " language plpgsql set search_path = '' as"
                " $$ begin new.active := false; return new; end $$"
            )
            conn.execute(
                "create trigger harness_new_jobs_start_inactive before insert on cron.job"
                " for each row execute function cron.harness_new_jobs_start_inactive()"
            )
        yield c
    finally:
        executor.stop()
        shutil.rmtree(base, ignore_errors=True)
