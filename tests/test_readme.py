"""Every SQL snippet of README.md runs against the migrated database, in the order the
README gives them, so the operator's guide cannot drift from the code. Blocks starting
with '-- hosted only' need the real hosted extensions and are skipped; the guide's
placeholder 'your-user-id' becomes a real, funded user; procedures (which commit) run on
their own connection."""

from __future__ import annotations

import re

import psycopg

from conftest import ROOT, Cluster, audit, new_issuer, new_user

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```sql\n(.*?)```", README, flags=re.S)


def test_the_readme_has_its_snippets() -> None:
    assert len(BLOCKS) >= 15
    assert sum(b.startswith("-- hosted only") for b in BLOCKS) == 1


def test_every_readme_snippet_runs_in_order(db: psycopg.Connection, cluster: Cluster) -> None:
    new_issuer(db, "AAPL")
    user = new_user(db, balance=1000)
    ran = 0
    for block in BLOCKS:
        if block.startswith("-- hosted only"):
            continue
        sql = block.replace("your-user-id", str(user))
        if sql.lstrip().lower().startswith("call "):
            with cluster.connect(autocommit=True) as conn:
                conn.execute(sql)
        else:
            db.execute(sql)
        ran += 1
    assert ran == len(BLOCKS) - 1
    # Step 6's order was placed, and the manual drain executed it.
    assert db.execute(
        "select status from public.queue where user_id = %s", (user,)
    ).fetchall() == [("completed",)]
    assert db.execute(
        "select ticker from public.issuer_stats_cache"
    ).fetchall() == [("AAPL",)]
    assert audit(db) == []


def test_step_6_verify_shows_the_order_completed(db: psycopg.Connection) -> None:
    new_issuer(db, "AAPL")
    user = new_user(db, balance=1000)
    insert, check = BLOCKS[3], BLOCKS[4]
    assert insert.startswith("INSERT INTO public.queue")
    db.execute(insert.replace("your-user-id", str(user)))
    db.execute("select process_all_pending_orders()")
    rows = db.execute(check).fetchall()
    assert [r[6] for r in rows] == ["completed"]
