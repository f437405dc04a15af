"""Migration file names: `<version>_<verb>_<object>.sql`, the version the UTC time the file
was written (`date -u +%Y%m%d%H%M%S`). A version in the future is a defect: once a file
with a later version has been pushed, `supabase db push` refuses every file created
before that time unless run with `--include-all`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from harness import MIGRATIONS

NAME = re.compile(r"(?P<version>\d{14})_[a-z][a-z0-9]*(_[a-z0-9]+)+\.sql")


def version_time(path: Path) -> datetime:
    match = NAME.fullmatch(path.name)
    assert match, f"{path.name}: name it <YYYYMMDDHHMMSS>_<verb>_<object>.sql"
    return datetime.strptime(match["version"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def in_the_future(paths: list[Path], now: datetime) -> list[str]:
    return [p.name for p in paths if version_time(p) > now]


def test_no_migration_version_is_in_the_future() -> None:
    files = sorted(MIGRATIONS.glob("*.sql"))
    assert files
    assert in_the_future(files, datetime.now(UTC)) == []


def test_a_future_version_is_reported() -> None:
    now = datetime(2026, 11, 28, 18, 0, 0, tzinfo=UTC)
    files = [Path("20261128175959_create_a.sql"), Path("20261128180000_create_b.sql"),
             Path("20261128180001_create_c.sql"), Path("20270101000000_create_d.sql")]
    assert in_the_future(files, now) == ["20261128180001_create_c.sql",
                                         "20270101000000_create_d.sql"]


def test_versions_are_unique() -> None:
    versions = [version_time(p) for p in MIGRATIONS.glob("*.sql")]
    assert len(versions) == len(set(versions))
