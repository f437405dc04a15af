"""The benchmark (tests/bench.py, `make bench`) runs at tiny sizes so it never rots: every
scenario must print its figures as numbers. No timing is asserted (machines are noisy)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

# Every figure the full benchmark reports, by key (see docs/benchmark.md).
FIGURES = ["1a", "1b", "1c", "2a", "2b", "3", "4a", "4b", "5a", "5b", "5c", "6a", "6b",
           "7a", "7b", "8a", "8b"]
NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?"


def test_bench_prints_every_scenario_with_a_number() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "bench.py"), "--scale", "tiny", "--runs", "1"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    table = out.stdout.split("\nscenario ", 1)[-1]
    for key in FIGURES:
        row = re.search(rf"^{re.escape(key)} .*$", table, re.MULTILINE)
        assert row, f"figure {key} missing from:\n{out.stdout}"
        assert re.search(rf"\s{NUMBER}\s", row.group(0)), f"figure {key} has no number: {row.group(0)}"
    assert out.stdout.count("audit clean") >= 1
    assert "fsync=off" in out.stdout
