"""Holdings name existing users and issuers. Foreign keys used to guarantee it row by row;
statement checks, a key-change check and delete guards do now (issue 15), as for the trade
history (test_trade_history_references.py). Each test here is one thing a foreign key did,
done the same way; the audit's side is in that file's audit test."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from conftest import Cluster, audit, drain, error_after_waiting, new_issuer, new_user

MISSING_USER = str(uuid.UUID(int=7))

HOLDING = ("insert into public.portfolio (user_id, ticker, pv_amount, avg_cost_basis)"
           " values (%(user)s, %(ticker)s, 0, 0)")


def closed_position(conn: psycopg.Connection) -> dict:
    """Issuer REF, issuer IDLE, a user holding 0 PV of REF (a closed position, no trade)
    and a user with no holding."""
    new_issuer(conn, "REF")
    new_issuer(conn, "IDLE")
    holder = new_user(conn)
    other = new_user(conn)
    conn.execute(HOLDING, {"user": holder, "ticker": "REF"})
    return {"user": str(holder), "other": str(other), "ticker": "REF"}


def holdings(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("select user_id::text, ticker from public.portfolio"
                        " order by user_id, ticker").fetchall()


def assert_refused(db: psycopg.Connection, statement: str, message: str) -> dict:
    """On a market with one holding: `statement` fails with 23503 and `message` (formatted
    with the holding's names), and the holdings, users and issuers are as they were."""
    names = closed_position(db)
    state = (holdings(db),
             db.execute("select count(*) from public.users").fetchone(),
             db.execute("select array_agg(ticker order by ticker) from public.issuer_trading"
                        ).fetchone())
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match=message.format(**names)):
        with db.transaction():
            db.execute(statement, names)
    assert (holdings(db),
            db.execute("select count(*) from public.users").fetchone(),
            db.execute("select array_agg(ticker order by ticker) from public.issuer_trading"
                       ).fetchone()) == state
    return names


@pytest.mark.parametrize(
    ("statement", "accepted", "message"),
    [
        (HOLDING.replace("%(user)s", f"'{MISSING_USER}'"), HOLDING.replace("%(user)s", "%(other)s"),
         f"a holding names user {MISSING_USER} that does not exist"),
        (HOLDING.replace("%(ticker)s", "'NOPE'"), HOLDING.replace("%(ticker)s", "'IDLE'"),
         "a holding names issuer NOPE that does not exist"),
        (f"update public.portfolio set user_id = '{MISSING_USER}'",
         "update public.portfolio set user_id = %(other)s",
         f"a holding names user {MISSING_USER} that does not exist"),
        ("update public.portfolio set ticker = 'NOPE'", "update public.portfolio set ticker = 'IDLE'",
         "a holding names issuer NOPE that does not exist"),
    ],
)
def test_a_holding_naming_a_missing_user_or_issuer_is_refused(
    db: psycopg.Connection, statement: str, accepted: str, message: str,
) -> None:
    names = assert_refused(db, statement, message)
    # The same statement naming rows that exist is accepted.
    db.execute(accepted, names)
    assert len(holdings(db)) == (2 if accepted.startswith("insert") else 1)


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("delete from auth.users where id = %(user)s",
         "cannot delete user {user}: a holding names it"),
        ("delete from public.issuer_details where ticker = 'REF'",
         "cannot delete issuer REF: a holding names it"),
        ("update public.users set user_id = gen_random_uuid() where user_id = %(user)s",
         "cannot update user {user}: a holding names it"),
        ("update public.issuer_trading set ticker = 'NEW' where ticker = 'REF'",
         "cannot update issuer REF: a holding names it"),
    ],
)
def test_a_user_or_issuer_a_holding_names_cannot_be_deleted_or_rekeyed(
    db: psycopg.Connection, statement: str, message: str,
) -> None:
    assert_refused(db, statement, message)


def test_the_engines_holding_updates_run_no_key_check(market: Cluster) -> None:
    """A second buy updates the holding's amounts, which sets neither user_id nor ticker:
    the key check is never called (a foreign key skipped an unchanged key too). An update
    that changes the ticker calls it once, so the count below does see calls."""
    def key_checks(conn: psycopg.Connection) -> int:
        # Calls not yet flushed to pg_stat_user_functions: they may include earlier
        # transactions', so only differences within one transaction count.
        return conn.execute("select coalesce(sum(calls), 0) from pg_stat_xact_user_functions"
                            " where funcname = 'check_holding_new_key'").fetchone()[0]

    with market.connect("supabase_admin") as conn:
        new_issuer(conn, "REF")
        new_issuer(conn, "IDLE")
        user = new_user(conn, balance=100)
        conn.commit()
        calls = []
        for _ in range(2):
            conn.execute("set local track_functions = 'all'")
            conn.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                         " values (%s, 'REF', 'buy', 10)", (user,))
            before = key_checks(conn)
            assert drain(conn)["successful"] == 1
            calls.append(key_checks(conn) - before)
            conn.commit()
        held = conn.execute("select ticker, pv_amount > 0, avg_cost_basis > 0,"
                            " updated_at > created_at from public.portfolio"
                            " where user_id = %s", (user,)).fetchall()
        assert held == [("REF", True, True, True)]
        conn.execute("set local track_functions = 'all'")
        before = key_checks(conn)
        conn.execute("update public.portfolio set ticker = 'IDLE', pv_amount = 0,"
                     " avg_cost_basis = 0 where user_id = %s", (user,))
        calls.append(key_checks(conn) - before)
        conn.rollback()
        assert calls == [0, 0, 1]


def test_a_delete_waits_for_an_uncommitted_holding_then_is_refused(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    with market.connect(autocommit=True) as conn:
        new_issuer(conn, "REF")
        user = new_user(conn)
    error = error_after_waiting(market, request, (HOLDING, {"user": user, "ticker": "REF"}),
                                ("delete from auth.users where id = %s", (user,)),
                                "the delete should be waiting for the holding's lock")
    assert isinstance(error, psycopg.errors.ForeignKeyViolation)
    assert f"cannot delete user {user}: a holding names it" in str(error)
    with market.connect(autocommit=True) as observer:
        assert observer.execute("select count(*) from public.users where user_id = %s",
                                (user,)).fetchone() == (1,)
        assert audit(observer) == []


def test_a_holding_waits_for_an_uncommitted_delete_of_its_issuer_then_is_refused(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    with market.connect(autocommit=True) as conn:
        new_issuer(conn, "REF")
        user = new_user(conn)
    error = error_after_waiting(
        market, request, ("delete from public.issuer_details where ticker = 'REF'", ()),
        (HOLDING, {"user": user, "ticker": "REF"}), "the insert should be waiting for the delete")
    assert isinstance(error, psycopg.errors.ForeignKeyViolation)
    assert "a holding names issuer REF that does not exist" in str(error)
    with market.connect(autocommit=True) as observer:
        assert observer.execute("select count(*) from public.portfolio").fetchone() == (0,)
        assert audit(observer) == []
