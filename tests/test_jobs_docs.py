"""Every SQL snippet of docs/jobs.md runs as written against the migrated database: queries
in a transaction that is rolled back, procedures (which commit) on their own."""

from __future__ import annotations

import re

import psycopg
import pytest

from conftest import ROOT, Cluster, new_issuer

DOC = ROOT / "docs" / "jobs.md"
SNIPPETS = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
QUERIES = [s for s in SNIPPETS if not s.lstrip().lower().startswith("call ")]
CALLS = [s for s in SNIPPETS if s.lstrip().lower().startswith("call ")]


def test_the_doc_has_snippets() -> None:
    assert len(QUERIES) >= 15
    assert len(CALLS) == 2


@pytest.mark.parametrize("snippet", QUERIES, ids=lambda s: " ".join(s.split())[:70])
def test_doc_query_runs(db: psycopg.Connection, snippet: str) -> None:
    new_issuer(db, "AAPL")
    cur = db.execute(snippet)
    assert cur.description is not None
    cur.fetchall()


@pytest.mark.parametrize("snippet", CALLS, ids=lambda s: " ".join(s.split())[:70])
def test_doc_call_runs(market: Cluster, snippet: str) -> None:
    with market.connect(autocommit=True) as conn:
        conn.execute(snippet)
