"""The trade history names existing users, issuers and trades. Foreign keys used to
guarantee it row by row; statement checks and delete guards do now (issue 15). Each test
here is one thing a foreign key did, done the same way, plus the audit for what no trigger
sees."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from conftest import Cluster, audit, drain, error_after_waiting, new_issuer, new_user

MISSING_USER = str(uuid.UUID(int=7))

TRADE = ("insert into public.transactions (user_id, amount_usdp, ticker, order_type,"
         " avg_price_paid, pv_traded, start_price, end_price)"
         " values (%(user)s, 1, %(ticker)s, 'buy', 1, 1, 1, 1.01) returning id")


def one_trade(conn: psycopg.Connection) -> dict:
    """Issuer REF and a user with one executed buy: one trade and its price tick."""
    new_issuer(conn, "REF")
    user = new_user(conn, balance=100)
    conn.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
                 " values (%s, 'REF', 'buy', 10)", (user,))
    assert drain(conn)["successful"] == 1
    trade = conn.execute("select id from public.transactions").fetchone()[0]
    return {"user": str(user), "trade": trade, "ticker": "REF"}


def history_size(conn: psycopg.Connection) -> tuple:
    return conn.execute("select (select count(*) from public.transactions),"
                        " (select count(*) from public.price_history),"
                        " (select array_agg((user_id, ticker) order by id)::text"
                        "  from public.transactions),"
                        " (select array_agg((ticker, transaction_id) order by id)::text"
                        "  from public.price_history)").fetchone()


def assert_refused(db: psycopg.Connection, statement: str, message: str) -> dict:
    """On a market with one trade: `statement` fails with 23503 and `message` (formatted
    with the trade's names), and the history is as it was. Returns the names."""
    names = one_trade(db)
    before = history_size(db)
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match=message.format(**names)):
        with db.transaction():
            db.execute(statement, names)
    assert history_size(db) == before
    return names


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (TRADE.replace("%(user)s", f"'{MISSING_USER}'"),
         f"a trade names user {MISSING_USER} that does not exist"),
        (TRADE.replace("%(ticker)s", "'NOPE'"), "a trade names issuer NOPE that does not exist"),
        ("insert into public.price_history (ticker, price, supply) values ('NOPE', 1, 0)",
         "a price tick names issuer NOPE that does not exist"),
        ("insert into public.price_history (ticker, price, supply, transaction_id)"
         " values ('REF', 1, 0, 999999)", "a price tick names trade 999999 that does not exist"),
        (f"update public.transactions set user_id = '{MISSING_USER}'",
         f"a trade names user {MISSING_USER} that does not exist"),
        ("update public.price_history set transaction_id = 999999",
         "a price tick names trade 999999 that does not exist"),
    ],
)
def test_a_trade_or_tick_naming_a_missing_row_is_refused(
    db: psycopg.Connection, statement: str, message: str,
) -> None:
    names = assert_refused(db, statement, message)
    # The same statement naming rows that exist is accepted.
    db.execute(statement.replace(MISSING_USER, names["user"]).replace("NOPE", "REF")
               .replace("999999", str(names["trade"])), names)


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("delete from auth.users where id = %(user)s",
         "cannot delete user {user}: the trade history names it"),
        ("delete from public.issuer_details where ticker = 'REF'",
         "cannot delete issuer REF: the trade history names it"),
        ("delete from public.transactions where id = %(trade)s",
         "cannot delete trade {trade}: the trade history names it"),
        ("update public.users set user_id = gen_random_uuid() where user_id = %(user)s",
         "cannot update user {user}: the trade history names it"),
        ("update public.issuer_trading set ticker = 'NEW' where ticker = 'REF'",
         "cannot update issuer REF: the trade history names it"),
        ("update public.transactions set id = default where id = %(trade)s",
         "cannot update trade {trade}: the trade history names it"),
    ],
)
def test_a_user_issuer_or_trade_the_history_names_cannot_be_deleted_or_rekeyed(
    db: psycopg.Connection, statement: str, message: str,
) -> None:
    assert_refused(db, statement, message)


def test_users_and_issuers_without_history_can_still_be_deleted(db: psycopg.Connection) -> None:
    one_trade(db)
    new_issuer(db, "IDLE")
    idle = new_user(db, balance=5)
    db.execute("delete from auth.users where id = %s", (idle,))
    db.execute("delete from public.issuer_details where ticker = 'IDLE'")
    assert db.execute("select (select count(*) from public.users where user_id = %s),"
                      " (select count(*) from public.issuer_trading where ticker = 'IDLE')",
                      (idle,)).fetchone() == (0, 0)



def test_an_issuer_a_queued_order_names_cannot_be_deleted(db: psycopg.Connection) -> None:
    """The queue's foreign key still refuses deleting an issuer an order names (its check
    scans the queue since queue_ticker_idx was dropped), and the order still executes."""
    new_issuer(db, "ORD")
    user = new_user(db, balance=100)
    db.execute("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
               " values (%s, 'ORD', 'buy', 10)", (user,))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="queue_ticker_fkey"):
        with db.transaction():
            db.execute("delete from public.issuer_details where ticker = 'ORD'")
    assert db.execute("select (select count(*) from public.issuer_trading where ticker = 'ORD'),"
                      " (select status from public.queue)").fetchone() == (1, "pending")
    assert drain(db)["successful"] == 1

def test_a_delete_waits_for_an_uncommitted_trade_then_is_refused(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    with market.connect(autocommit=True) as conn:
        new_issuer(conn, "REF")
        user = new_user(conn)
    error = error_after_waiting(market, request, (TRADE, {"user": user, "ticker": "REF"}),
                                ("delete from auth.users where id = %s", (user,)),
                                "the delete should be waiting for the trade's lock")
    assert isinstance(error, psycopg.errors.ForeignKeyViolation)
    assert f"cannot delete user {user}: the trade history names it" in str(error)
    with market.connect(autocommit=True) as observer:
        assert observer.execute("select count(*) from public.users where user_id = %s",
                                (user,)).fetchone() == (1,)
        assert audit(observer) == []


def test_a_trade_waits_for_an_uncommitted_delete_of_its_user_then_is_refused(
    market: Cluster, request: pytest.FixtureRequest,
) -> None:
    with market.connect(autocommit=True) as conn:
        new_issuer(conn, "REF")
        user = new_user(conn)
    error = error_after_waiting(market, request, ("delete from auth.users where id = %s", (user,)),
                                (TRADE, {"user": user, "ticker": "REF"}),
                                "the trade should be waiting for the delete")
    assert isinstance(error, psycopg.errors.ForeignKeyViolation)
    assert f"a trade names user {user} that does not exist" in str(error)
    with market.connect(autocommit=True) as observer:
        assert observer.execute("select count(*) from public.transactions").fetchone() == (0,)
        assert audit(observer) == []


@pytest.mark.breaks_invariants
def test_the_audit_reports_history_that_names_a_missing_row(db: psycopg.Connection) -> None:
    """What no trigger sees: TRUNCATE ... CASCADE followed the foreign keys to the trade
    history; now it leaves the trades behind, and the audit names each orphan."""
    names = one_trade(db)
    assert audit(db) == []
    db.execute("truncate public.users cascade")
    found = sorted(row for row in audit(db) if row[0] == "references")
    holding = f"holding of user {names['user']} in REF names"
    assert found == [
        ("references", "REF", f"{holding} a user that does not exist"),
        ("references", "REF",
         f"trade {names['trade']} names user {names['user']}, which does not exist"),
    ]
    db.execute("truncate public.issuer_trading cascade")
    db.execute("truncate public.transactions")
    found = sorted(row for row in audit(db) if row[0] == "references")
    tick = db.execute("select id from public.price_history").fetchone()[0]
    assert found == [
        ("references", "REF", f"{holding} a user that does not exist"),
        ("references", "REF", f"{holding} an issuer that does not exist"),
        ("references", "REF", f"price tick {tick} names issuer REF, which does not exist"),
        ("references", "REF", f"price tick {tick} names trade {names['trade']}, which does not exist"),
    ]
