"""Live market over Supabase Realtime (issue 16 item 4): what a drain puts on the
publication Realtime streams (read back through a logical replication slot with wal2json,
the decoder Supabase Realtime uses), and who may read a user's fill messages (the RLS
policy Realtime Authorization evaluates, with realtime.topic() set as Realtime sets it)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from conftest import Cluster, act_as_owner, drain, new_issuer, new_user, rows, signed_in


def published_tables(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in rows(
        conn,
        "select format('%s.%s', schemaname, tablename) from pg_publication_tables"
        " where pubname = 'supabase_realtime' order by 1",
    )]


def test_issuer_trading_is_published_to_realtime(db: psycopg.Connection) -> None:
    assert published_tables(db) == ["public.issuer_trading"]


@pytest.fixture
def wal2json_slot(market: Cluster) -> Iterator[tuple[Cluster, str]]:
    """A logical replication slot decoding with wal2json, as Supabase Realtime reads the
    WAL; dropped afterwards so it never holds WAL back."""
    slot = f"pauv_test_{uuid.uuid4().hex[:8]}"
    with market.connect("supabase_admin", autocommit=True) as admin:
        admin.execute("select pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
    try:
        yield market, slot
    finally:
        with market.connect("supabase_admin", autocommit=True) as admin:
            admin.execute("select pg_drop_replication_slot(%s)", (slot,))


def realtime_changes(cluster: Cluster, slot: str) -> list[dict]:
    """The changes since the last call to the tables in the supabase_realtime publication,
    decoded by wal2json (format 2: one JSON object per change)."""
    with cluster.connect("supabase_admin", autocommit=True) as admin:
        # Decoding stops at the WAL flushed to disk, and the throwaway cluster commits
        # asynchronously: a WAL switch flushes everything written before it.
        admin.execute("select pg_switch_wal()")
        tables = ",".join(published_tables(admin))
        return [json.loads(data) for (data,) in admin.execute(
            "select data from pg_logical_slot_get_changes(%s, null, null,"
            " 'format-version', '2', 'add-tables', %s, 'include-transaction', 'false')",
            (slot, tables),
        ).fetchall()]


def test_a_drain_streams_one_price_change_per_ticker(wal2json_slot) -> None:
    cluster, slot = wal2json_slot
    with cluster.connect() as conn:
        for ticker in ("RTA", "RTB"):
            new_issuer(conn, ticker)
        buyers = [new_user(conn, balance=100) for _ in range(12)]
        conn.commit()
        for i, user in enumerate(buyers):
            with signed_in(conn, user):
                conn.execute("select public.place_order(%s, 'buy', %s)",
                             ("RTA" if i % 3 else "RTB", Decimal("2.50")))
        conn.commit()
    realtime_changes(cluster, slot)  # everything up to here: listing, sign-ups, placements

    with cluster.connect() as conn:
        result = drain(conn)
        conn.commit()
        prices = dict(rows(conn, "select ticker, current_price from public.issuer_trading"))
    assert result["successful"] == 12

    changes = realtime_changes(cluster, slot)
    assert all(c["schema"] == "public" and c["table"] == "issuer_trading" for c in changes)
    def column(change: dict, name: str):
        return next(col["value"] for col in change["columns"] if col["name"] == name)

    assert {c["action"] for c in changes} == {"U"}
    per_ticker = Counter(column(c, "ticker") for c in changes)
    # 8 trades on RTA, 4 on RTB, one processing run: one change each, not one per trade.
    assert per_ticker == Counter({"RTA": 1, "RTB": 1})
    streamed = {column(c, "ticker"): Decimal(str(column(c, "current_price"))) for c in changes}
    assert streamed == prices


def test_a_users_order_topic_is_readable_by_that_user_only(db: psycopg.Connection) -> None:
    alice, bob = new_user(db), new_user(db)
    # As the processor does on Supabase: realtime.send as the database owner.
    db.execute("select realtime.send(%s, 'order_completed', %s, true)",
               (json.dumps({"order_id": 1}), f"orders:{alice}"))

    def visible(user: uuid.UUID | None, topic: str) -> int:
        db.execute("select set_config('realtime.topic', %s, true)", (topic,))
        if user is None:
            db.execute("set local role anon")
            count = db.execute("select count(*) from realtime.messages").fetchone()[0]
            act_as_owner(db)
            return count
        with signed_in(db, user):
            return db.execute("select count(*) from realtime.messages").fetchone()[0]

    assert visible(alice, f"orders:{alice}") == 1
    assert visible(bob, f"orders:{alice}") == 0   # Bob cannot join Alice's channel
    assert visible(bob, f"orders:{bob}") == 0     # nor read her messages from his own
    assert visible(alice, "orders:all") == 0      # no topic but one's own
    assert visible(None, f"orders:{alice}") == 0  # anon: nothing


def test_each_finished_order_is_broadcast_to_its_owner_only(market: Cluster) -> None:
    with market.connect() as conn:
        new_issuer(conn, "FIL")
        alice, bob = new_user(conn, balance=100), new_user(conn, balance=100)
        conn.commit()
        with signed_in(conn, alice):
            bought = conn.execute("select id from public.place_order('FIL', 'buy', 10)").fetchone()[0]
            kept = conn.execute("select id from public.place_order('FIL', 'buy', 5)").fetchone()[0]
        with signed_in(conn, bob):
            cancelled = conn.execute("select id from public.place_order('FIL', 'buy', 7)").fetchone()[0]
            conn.execute("select public.cancel_order(%s)", (cancelled,))
        conn.commit()
        # Alice withdraws what her second buy needed: it fails when it executes.
        conn.execute("select public.withdraw_usdp(%s, 90)", (alice,))
        conn.commit()
        assert drain(conn)["successful"] == 1
        conn.commit()

        def received(user: uuid.UUID) -> list[tuple]:
            conn.execute("select set_config('realtime.topic', %s, false)", (f"orders:{user}",))
            with signed_in(conn, user):
                got = rows(conn, "select event, payload from realtime.messages"
                                 " order by (payload ->> 'order_id')::bigint")
            conn.rollback()
            return got

        alice_got = received(alice)
        assert [(event, p["order_id"], p["status"]) for event, p in alice_got] == [
            ("order_completed", bought, "completed"), ("order_failed", kept, "failed")]
        assert set(alice_got[0][1]) == {"order_id", "ticker", "order_type", "status",
                                        "error_message", "processed_at"}
        assert (alice_got[0][1]["ticker"], alice_got[0][1]["order_type"]) == ("FIL", "buy")
        assert alice_got[0][1]["error_message"] is None
        assert "insufficient balance" in alice_got[1][1]["error_message"]
        assert [(event, p["order_id"]) for event, p in received(bob)] == [
            ("order_cancelled", cancelled)]
        # Nothing else was broadcast: one message per order that left pending.
        with market.connect("supabase_admin") as admin:
            assert rows(admin, "select count(*) from realtime.messages") == [(3,)]
