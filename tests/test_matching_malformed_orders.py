"""No poison orders (issue 11 item 1): a queue row the processor cannot execute fails alone,
with its reason, and every other order of its ticker and of other tickers still executes,
whichever entry point drains the queue. The table's own checks refuse such rows, so each test
first drops every CHECK and foreign key on public.queue and on the amount domains, inside its
rolled-back transaction: what a damaged or hand-edited database could hold."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest

from conftest import audit, new_issuer, new_user

GHOST = uuid.UUID(int=7)  # a user id with no users row

# (order_type, amount_usdp, amount_pv, ticker, user, error_message): user "seller" holds 20 PV
# of BAD; "ghost" has no users row; ticker ZZZ is not listed.
MALFORMED = [
    ("sell", "5", None, "BAD", "seller", "a sell needs amount_pv (the PV to sell), got null"),
    ("buy", None, None, "BAD", "seller", "a buy needs amount_usdp (the USDP to spend), got null"),
    ("buy", None, "3", "BAD", "seller", "a buy needs amount_usdp (the USDP to spend), got null"),
    ("buy", "5", "3", "BAD", "seller",
     "a buy carries its amount in amount_usdp only, but amount_pv is 3"),
    ("sell", "5", "1", "BAD", "seller",
     "a sell carries its amount in amount_pv only, but amount_usdp is 5"),
    ("buy", "-5", None, "BAD", "seller", "amount must be between 0.01 and 1000000 USDP, got -5"),
    ("buy", "0", "0", "BAD", "seller", "amount must be between 0.01 and 1000000 USDP, got 0"),
    ("sell", None, "-1", "BAD", "seller", "amount must be between 0.01 and 1000000 PV, got -1"),
    ("sell", "0", "0", "BAD", "seller", "amount must be between 0.01 and 1000000 PV, got 0"),
    ("buy", "NaN", None, "BAD", "seller", "amount must be between 0.01 and 1000000 USDP, got NaN"),
    ("buy", "1.0000001", None, "BAD", "seller",
     "USDP amounts have at most 6 decimals, got 1.0000001"),
    ("sell", None, "1.000000001", "BAD", "seller",
     "PV amounts have at most 8 decimals, got 1.000000001"),
    ("hold", "5", None, "BAD", "seller", "order_type must be buy or sell, got hold"),
    ("buy", "5", None, "BAD", "ghost", f"unknown user {GHOST}"),
    ("buy", "5", None, "ZZZ", "seller", "unknown ticker ZZZ"),
]


def allow_impossible_rows(db: psycopg.Connection) -> None:
    """Drop every CHECK and foreign key of public.queue and every constraint of the amount
    domains (rolled back with the test): the processor must not rely on them."""
    db.execute("""
        do $$
        declare
            v_con record;
        begin
            for v_con in
                select c.conname from pg_constraint as c
                where c.conrelid = 'public.queue'::regclass and c.contype in ('c', 'f')
            loop
                execute format('alter table public.queue drop constraint %I', v_con.conname);
            end loop;
            for v_con in
                select c.contypid::regtype as domain_name, c.conname from pg_constraint as c
                where c.contypid in ('public.usdp_amount'::regtype, 'public.pv_quantity'::regtype)
            loop
                execute format('alter domain %s drop constraint %I', v_con.domain_name,
                               v_con.conname);
            end loop;
        end;
        $$
    """)


def queue(db, user, ticker, order_type, usdp, pv) -> int:
    return db.execute(
        "insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv)"
        " values (%s, %s, %s, %s::numeric, %s::numeric) returning id",
        (user, ticker, order_type, usdp, pv),
    ).fetchone()[0]


def drain_with(db: psycopg.Connection, entry: str) -> None:
    """Drain the whole queue through one entry point, as its callers loop."""
    for _ in range(100):
        pending = db.execute("select count(*) from public.queue where status = 'pending'"
                             ).fetchone()[0]
        if pending == 0:
            return
        if entry == "process_all_pending_orders":
            db.execute("select public.process_all_pending_orders()")
        elif entry == "process_next_queue_order":
            db.execute("select public.process_next_queue_order()")
        elif entry == "process_order_batch":
            db.execute("select public.process_order_batch(3)")
        else:  # the per-ticker drain, as process_all_pending_orders runs it
            for (ticker,) in db.execute("select distinct ticker from public.queue"
                                        " where status = 'pending' order by 1").fetchall():
                db.execute("select pg_try_advisory_xact_lock(1885435254, pauv.ticker_lock_id(%s))",
                           (ticker,))
                db.execute("select * from pauv.process_ticker_orders(%s, 1000, 'infinity', now())",
                           (ticker,))
    raise AssertionError("the queue did not drain")


ENTRIES = ["process_all_pending_orders", "process_next_queue_order", "process_order_batch",
           "process_ticker_orders"]


@pytest.mark.parametrize("entry", ENTRIES)
def test_each_malformed_order_fails_alone_and_the_queue_moves(db, entry) -> None:
    new_issuer(db, "BAD")
    new_issuer(db, "OK")
    seller = new_user(db, balance=1000)
    buyer = new_user(db, balance=1000)
    # The seller holds 20 PV of BAD: 1*20 + 0.01*20^2/2 = 22 USDP.
    queue(db, seller, "BAD", "buy", "22", None)
    drain_with(db, entry)
    assert db.execute("select pv_amount from public.portfolio where user_id = %s",
                      (seller,)).fetchone() == (Decimal("20"),)
    allow_impossible_rows(db)

    users = {"seller": seller, "ghost": GHOST}
    # A good buy before and after each malformed row on its ticker, and one on another ticker.
    good_before = queue(db, buyer, "BAD", "buy", "0.5", None)
    bad = [queue(db, users[u], t, kind, usdp, pv) for kind, usdp, pv, t, u, _ in MALFORMED]
    good_after = queue(db, buyer, "BAD", "buy", "0.5", "0")
    good_other = queue(db, buyer, "OK", "buy", "10.5", None)

    drain_with(db, entry)

    rows = {r[0]: r[1:] for r in db.execute(
        "select q.id, q.status, q.error_message, q.processed_at is not null, count(t.id)"
        " from public.queue as q left join public.transactions as t on t.queue_id = q.id"
        " group by q.id").fetchall()}
    for order_id, (*_, message) in zip(bad, MALFORMED, strict=True):
        assert rows[order_id] == ("failed", message, True, 0)
    for order_id in (good_before, good_after, good_other):
        assert rows[order_id] == ("completed", None, True, 1)
    # The good buys, exactly: BAD from supply 20 (price 1.20) buys 0.5 twice; OK buys 10 PV
    # for 10.5. The seller's balance and holding are untouched by the failures.
    bought = dict(db.execute(
        "select ticker, sum(pv_traded) from public.transactions where user_id = %s"
        " group by ticker", (buyer,)).fetchall())
    assert bought["OK"] == Decimal("10")
    assert db.execute("select current_supply, total_usdp from public.issuer_trading"
                      " where ticker = 'BAD'").fetchone() == (20 + bought["BAD"], Decimal("23"))
    assert db.execute("select usdp_balance from public.users where user_id = %s",
                      (buyer,)).fetchone() == (Decimal("1000") - Decimal("11.5"),)
    assert db.execute("select usdp_balance from public.users where user_id = %s",
                      (seller,)).fetchone() == (Decimal("978"),)
    assert audit(db) == []


def test_the_issues_reproduction_no_longer_stops_every_ticker(db) -> None:
    """Issue 11's own case: a sell with its amount in amount_usdp, directly inserted by the
    service role, used to make every call raise 23502, other tickers included."""
    new_issuer(db, "DJMX")
    new_issuer(db, "MORE")
    user = new_user(db, balance=100)
    allow_impossible_rows(db)
    bad = queue(db, user, "DJMX", "sell", "5", None)
    good = queue(db, user, "MORE", "buy", "10.5", None)
    db.execute("set local role service_role")
    result = db.execute("select public.process_all_pending_orders()").fetchone()[0]
    db.execute("reset role")
    assert (result["total_processed"], result["successful"], result["failed"],
            result["has_more"]) == (2, 1, 1, False)
    assert db.execute("select id, status, error_message from public.queue order by id"
                      ).fetchall() == [
        (bad, "failed", "a sell needs amount_pv (the PV to sell), got null"),
        (good, "completed", None),
    ]
    assert audit(db) == []


def test_process_order_batch_reports_the_malformed_order_with_its_reason(db) -> None:
    new_issuer(db, "APP")
    user = new_user(db, balance=100)
    allow_impossible_rows(db)
    bad = queue(db, user, "APP", "buy", None, None)
    good = queue(db, user, "APP", "buy", "10.5", "0")
    out = db.execute("select public.process_order_batch(10)").fetchone()[0]
    assert (out["processed"], out["successful"], out["failed"], out["has_more"]) == (2, 1, 1, False)
    assert out["results"][0] == {
        "order_id": bad, "success": False,
        "error": "a buy needs amount_usdp (the USDP to spend), got null"}
    assert out["results"][1]["order_id"] == good
    assert out["results"][1]["success"] is True
    assert Decimal(str(out["results"][1]["tokens_received"])) == Decimal("10")
