"""The benchmark (tests/bench.py, `make bench`) runs at tiny sizes so it never rots: every
scenario must print its figures as numbers. No timing is asserted (machines are noisy)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

# Every figure the benchmark reports, by key (see docs/benchmark.md). Scenarios 5-7
# measure the scheduled jobs: required as soon as a migration defines their function.
FIGURES = ["1a", "1b", "1c", "1d", "1e", "2a", "2b", "2c", "3", "3b", "3c",
           "4a", "4b", "4c", "4d", "4e", "4f", "4g", "4h", "4i", "4j", "4k", "4l", "8a", "8b",
           "9a", "9b", "9c", "9d", "10a", "10b", "11a", "11b", "11c"]
JOB_FIGURES = {
    "refresh_issuer_stats_cache": ["5a", "5b", "5c"],
    "snapshot_hourly_prices": ["6a", "6b"],
    "cleanup_old_queue_entries": ["7a", "7b"],
}


def expected_figures() -> list[str]:
    migrations = "\n".join(p.read_text() for p in (ROOT / "supabase" / "migrations").glob("*.sql"))
    keys = list(FIGURES)
    for fn, fn_keys in JOB_FIGURES.items():
        if f"function public.{fn}(" in migrations:
            keys += fn_keys
    return keys


NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?"


def test_bench_prints_every_scenario_with_a_number() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "bench.py"), "--scale", "tiny", "--runs", "1"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    table = out.stdout.split("\nscenario ", 1)[-1]
    for key in expected_figures():
        row = re.search(rf"^{re.escape(key)} .*$", table, re.MULTILINE)
        assert row, f"figure {key} missing from:\n{out.stdout}"
        # A figure without measurements prints n/a as its median.
        assert "n/a" not in row.group(0), f"figure {key} has no number: {row.group(0)}"
        assert re.search(rf"\s{NUMBER}\s", row.group(0)), f"figure {key} has no number: {row.group(0)}"
    assert out.stdout.count("audit clean") >= 1
    assert "fsync=off" in out.stdout
