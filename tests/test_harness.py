"""The test harness cleans up after itself even when it is killed: a throwaway cluster whose
maker died is stopped and deleted by the next one made with the same prefix."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from harness import ROOT, reap_orphaned_clusters

MAKE_AND_WAIT = """
import sys, time
sys.path.insert(0, {tests!r})
from harness import throwaway_cluster
with throwaway_cluster(prefix={prefix!r}, push=False) as c:
    print(c.socket_dir, flush=True)
    time.sleep(600)
"""


def postmaster_pid(base: str) -> int:
    with open(os.path.join(base, "data", "postmaster.pid")) as f:
        return int(f.readline())


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_cluster_whose_maker_was_killed_is_stopped_and_deleted() -> None:
    prefix = f"pauv-reap-{os.getpid()}-"
    maker = subprocess.Popen(
        [sys.executable, "-c", MAKE_AND_WAIT.format(tests=str(ROOT / "tests"), prefix=prefix)],
        stdout=subprocess.PIPE, text=True)
    try:
        base = maker.stdout.readline().strip()
        assert base.startswith(os.path.join(os.path.dirname(base), prefix)), base
        server = postmaster_pid(base)
        # While its maker lives, the cluster is left alone.
        assert reap_orphaned_clusters(prefix) == []
    finally:
        maker.kill()
        maker.wait()
    assert running(server), "killing the maker should leave its postgres running"
    assert reap_orphaned_clusters(prefix) == [base]
    for _ in range(250):
        if not running(server):
            break
        time.sleep(0.02)
    assert not running(server)
    assert not os.path.exists(base)
