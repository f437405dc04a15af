"""Runs every pgTAP file of supabase/tests/database/ the way pg_prove does (psql, one
file a run) and reports each TAP assertion as a pytest subtest with its diagnostic."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, Cluster

PGTAP_DIR = ROOT / "supabase" / "tests" / "database"
PGTAP_FILES = sorted(PGTAP_DIR.glob("*.sql"))
# pg_prove's own psql flags, so a file that passes here passes under pg_prove.
PSQL_FLAGS = ["--no-psqlrc", "--no-align", "--quiet", "--pset", "pager=off",
              "--pset", "tuples_only=true", "--set", "ON_ERROR_STOP=1"]
TAP_LINE = re.compile(r"^(not )?ok (\d+)(?: - (.*))?$")


def parse_tap(output: str) -> tuple[int | None, list[tuple[bool, int, str, str]]]:
    """(planned count, [(ok, number, description, diagnostic)])."""
    planned = None
    results: list[tuple[bool, int, str, str]] = []
    for line in output.splitlines():
        if m := re.match(r"^1\.\.(\d+)$", line):
            planned = int(m.group(1))
        elif m := TAP_LINE.match(line):
            results.append((m.group(1) is None, int(m.group(2)), m.group(3) or "", ""))
        elif line.startswith("#") and results:
            ok, n, desc, diag = results[-1]
            results[-1] = (ok, n, desc, diag + line + "\n")
    return planned, results


@pytest.mark.parametrize("path", PGTAP_FILES, ids=[p.name for p in PGTAP_FILES])
def test_pgtap_file(cluster: Cluster, path: Path, subtests) -> None:
    proc = subprocess.run(
        ["psql", *PSQL_FLAGS, "--dbname", cluster.url(), "--file", str(path)],
        capture_output=True, text=True, check=False,
    )
    planned, results = parse_tap(proc.stdout)
    for ok, number, description, diagnostic in results:
        with subtests.test(msg=f"{number} - {description}"):
            assert ok, diagnostic or f"not ok {number} - {description}"
    assert proc.returncode == 0, f"psql failed:\n{proc.stderr}"
    assert planned is not None and planned > 0, "the file declared no plan"
    assert len(results) == planned, f"planned {planned} assertions, ran {len(results)}"


def test_pgtap_files_pass_under_pg_prove(cluster: Cluster) -> None:
    """The same files, unchanged, under the real pg_prove (as `supabase test db` runs them)."""
    proc = subprocess.run(
        ["pg_prove", "--host", cluster.host, "--port", str(cluster.port),
         "--username", "postgres", "--dbname", "postgres", *map(str, PGTAP_FILES)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result: PASS" in proc.stdout
