"""`make up` / `make down` (scripts/db.sh): the local database a person uses is durable, and
the script never deletes or stops a server that is not provably this checkout's.

Each test runs db.sh on its own free port and data folder (PAUV_DB_PORT, PAUV_DATA_DIR).
A "foreign" server is a bare PostgreSQL started by hand, as the unprivileged server user
when we are root (PostgreSQL refuses to run as root; scripts/lib.sh: as_pg_user)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness import ROOT, free_port

DB_SH = ROOT / "scripts" / "db.sh"


def pg_bin(name: str) -> str:
    major = max((p.name for p in Path("/usr/lib/postgresql").iterdir()), key=int)
    return f"/usr/lib/postgresql/{major}/bin/{name}"


def as_server_user(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


def db_sh(action: str, port: int, data_root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PAUV_DB_PORT=str(port), PAUV_DATA_DIR=str(data_root))
    return subprocess.run(["bash", str(DB_SH), action], env=env, capture_output=True,
                          text=True, check=False, cwd="/")


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder the server user may write in; removed with whatever is left in it."""
    base = Path(tempfile.mkdtemp(prefix="pauv-dbsh-"))
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    try:
        yield base
    finally:
        for pid_file in base.glob("**/postmaster.pid"):
            subprocess.run(as_server_user(pg_bin("pg_ctl"), "stop", "-D", str(pid_file.parent),
                                          "-m", "immediate"), capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def foreign_server(datadir: Path, port: int) -> Iterator[None]:
    """A plain PostgreSQL that is not this checkout's (no marker), running on `port`."""
    datadir.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(datadir.parent, "postgres", "postgres")
    subprocess.run(as_server_user(pg_bin("initdb"), "-D", str(datadir), "-U", "someone",
                                  "--auth=trust"), check=True, capture_output=True, cwd="/")
    subprocess.run(as_server_user(pg_bin("pg_ctl"), "start", "-w", "-D", str(datadir),
                                  "-l", str(datadir / "log"), "-o",
                                  f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1"),
                   check=True, capture_output=True, cwd="/")
    try:
        yield
    finally:
        subprocess.run(as_server_user(pg_bin("pg_ctl"), "stop", "-D", str(datadir), "-m", "fast"),
                       check=False, capture_output=True, cwd="/")


def answers(port: int) -> bool:
    return subprocess.run([pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)],
                          check=False).returncode == 0


def test_make_up_is_durable_keeps_data_across_a_crash_and_down_deletes_it(scratch: Path) -> None:
    port, root = free_port(), scratch / "local"
    up = db_sh("up", port, root)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"PAUV_DB_PORT={port} make down" in up.stdout  # the hint names the port in use
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
    with psycopg.connect(url, autocommit=True) as conn:
        settings = dict(conn.execute(
            "select name, setting from pg_settings"
            " where name in ('fsync', 'synchronous_commit', 'full_page_writes')").fetchall())
        assert settings == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
        conn.execute("create table public.acknowledged (i integer)")
        for i in range(200):  # 200 acknowledged commits
            conn.execute("insert into public.acknowledged values (%s)", (i,))

    again = db_sh("up", port, root)
    assert again.returncode == 0 and "already running" in again.stdout

    # An immediate stop is a crash: nothing acknowledged may be lost, and `make up` starts
    # the same database again instead of replacing it.
    subprocess.run(as_server_user(pg_bin("pg_ctl"), "stop", "-D", str(root / "data"),
                                  "-m", "immediate"), check=True, capture_output=True, cwd="/")
    assert db_sh("status", port, root).returncode == 1
    restarted = db_sh("up", port, root)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "data kept" in restarted.stdout
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from public.acknowledged").fetchone()[0] == 200

    down = db_sh("down", port, root)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not answers(port)
    assert not root.exists()


def test_up_and_down_never_touch_a_running_server_on_their_data_folder(scratch: Path) -> None:
    port, root = free_port(), scratch / "busy"
    with foreign_server(root / "data", port):
        up = db_sh("up", port, root)
        assert up.returncode == 1
        assert "belongs to a running server" in up.stderr and "Nothing was deleted" in up.stderr
        # Another port, same folder: still refused (the pid file, not the port, decides).
        other_port = db_sh("up", free_port(), root)
        assert other_port.returncode == 1 and "belongs to a running server" in other_port.stderr

        down = db_sh("down", port, root)
        assert "not created by this checkout" in down.stdout
        assert answers(port)
        assert (root / "data" / "PG_VERSION").is_file()


def test_up_refuses_a_port_used_by_another_server_and_down_leaves_it_running(
    scratch: Path,
) -> None:
    port = free_port()
    with foreign_server(scratch / "elsewhere" / "data", port):
        mine = scratch / "mine"
        up = db_sh("up", port, mine)
        assert up.returncode == 1 and f"port {port} is already in use" in up.stderr
        assert not mine.exists()
        down = db_sh("down", port, mine)
        assert down.returncode == 0 and "No Pauv database of this checkout" in down.stdout
        assert answers(port)
        assert (scratch / "elsewhere" / "data" / "PG_VERSION").is_file()


def test_up_does_not_delete_a_stopped_folder_it_did_not_create(scratch: Path) -> None:
    root = scratch / "someone-elses"
    (root / "data").mkdir(parents=True)
    (root / "data" / "precious").write_text("keep me")
    up = db_sh("up", free_port(), root)
    assert up.returncode == 1 and "not created by this checkout" in up.stderr
    down = db_sh("down", free_port(), root)
    assert "Nothing was stopped or deleted" in down.stdout
    assert (root / "data" / "precious").read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a second user: run as root")
def test_an_ordinary_user_never_touches_a_folder_it_cannot_inspect(scratch: Path) -> None:
    """As the issue found: an ordinary user's `make down` tried to delete a root-started
    server's data. Here `postgres` plays the ordinary user; the folder carries this
    checkout's marker but its data is root's (mode 0700), so nothing proves it stopped."""
    if subprocess.run(["runuser", "-u", "postgres", "--", "test", "-r", str(DB_SH)],
                      check=False).returncode != 0:
        pytest.skip("the checkout is not readable by the postgres user")
    root, port = scratch / "roots", free_port()
    (root / "data").mkdir(parents=True)
    (root / "data").chmod(0o700)
    (root / "data" / "postmaster.pid").write_text("1\n")
    (root / "pauv-checkout").write_text(f"{ROOT}\n")
    env = dict(os.environ, PAUV_DB_PORT=str(port), PAUV_DATA_DIR=str(root), HOME="/tmp")
    for action in ("up", "down"):
        out = subprocess.run(["runuser", "-u", "postgres", "--", "bash", str(DB_SH), action],
                             env=env, capture_output=True, text=True, check=False, cwd="/")
        assert out.returncode == 1 and "cannot be inspected" in out.stderr, out
    assert (root / "data" / "postmaster.pid").read_text() == "1\n"
