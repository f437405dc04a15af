"""supabase/config.toml: the pinned CLI loads it without complaint, and it exposes through
the Data API exactly the schemas the security model assumes (never the internal 'pauv')."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

from conftest import ROOT, Cluster

CLI = ROOT / "node_modules" / ".bin" / "supabase"
CONFIG_PATH = ROOT / "supabase" / "config.toml"


def dry_run_push(cluster: Cluster, workdir: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CLI), "db", "push", "--db-url", cluster.url(), "--yes", "--dry-run",
         "--workdir", str(workdir)],
        cwd=workdir, capture_output=True, text=True, check=False,
    )


def test_the_cli_loads_the_config_without_warnings(cluster: Cluster) -> None:
    proc = dry_run_push(cluster)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Remote database is up to date." in output
    lowered = output.lower()
    assert "warn" not in lowered and "error" not in lowered and "failed" not in lowered, output


def test_the_cli_rejects_a_broken_config(cluster: Cluster, tmp_path: Path) -> None:
    """The control for the test above: the CLI does read config.toml on push."""
    shutil.copytree(ROOT / "supabase", tmp_path / "supabase")
    with (tmp_path / "supabase" / "config.toml").open("a") as f:
        f.write("\nthis is [not toml\n")
    proc = dry_run_push(cluster, tmp_path)
    assert proc.returncode != 0
    assert "failed to load config" in proc.stdout + proc.stderr


def test_the_api_exposes_public_and_graphql_public_only() -> None:
    api = tomllib.loads(CONFIG_PATH.read_text())["api"]
    assert api["schemas"] == ["public", "graphql_public"]
    assert "pauv" not in api["extra_search_path"]
