"""refresh_issuer_stats_cache(): every column against a hand-computed market at a fixed
time, its boundaries (a trade exactly 24 h old, an issuer listed 30 minutes ago, an issuer
never traded), delisting, idempotency, and that a refresh and trading never wait on
each other."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest

from conftest import Cluster, as_role, new_issuer, new_user
from jobs_support import at, trade

NOW = at("2026-03-10 12:00")
COLUMNS = ("ticker, current_price, price_1h_change, price_24h_change, price_7d_change,"
           " volume_24h, holders, market_cap, circulating_supply, cached_at")


def build_market(conn: psycopg.Connection) -> None:
    """AAA on the default curve (1.00 + 0.01 * supply) traded over 8 days; NEW listed 30
    minutes before NOW on a 2.00 + 0.05 curve; IDLE listed, never traded."""
    u1, u2, u3 = new_user(conn), new_user(conn), new_user(conn)
    new_issuer(conn, "AAA")
    trade(conn, "AAA", u1, "buy", 10, NOW - timedelta(days=8))        # 10.5 -> 1.10
    trade(conn, "AAA", u2, "buy", 10, NOW - timedelta(days=2))        # 11.5 -> 1.20
    trade(conn, "AAA", u3, "buy", 10, NOW - timedelta(hours=24))      # 12.5 -> 1.30
    trade(conn, "AAA", u1, "sell", 10, NOW - timedelta(minutes=90))   # 12.5 -> 1.20
    trade(conn, "AAA", u2, "buy", 5, NOW - timedelta(minutes=30))     # 6.125 -> 1.25
    new_issuer(conn, "NEW", base_price="2.00", price_step="0.05")
    conn.execute("update public.issuer_trading set created_at = %s where ticker = 'NEW'",
                 (NOW - timedelta(minutes=30),))
    trade(conn, "NEW", u3, "buy", 4, NOW - timedelta(minutes=20))     # 8.4 -> 2.20
    new_issuer(conn, "IDLE")


def cache(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        f"select {COLUMNS} from public.issuer_stats_cache order by ticker"
    ).fetchall()


EXPECTED = [
    # (1.25 - 1.20) / 1.20 = +4.1666 %; against the tick exactly 24 h old (1.30): -3.846 %;
    # against the 8-day-old tick (1.10): +13.636 %. Volume in (NOW - 24 h, NOW]: the sell
    # 90 minutes ago (12.5) and the buy 30 minutes ago (6.125), not the trade exactly 24 h
    # old. Holders: u2 (15) and u3 (10); u1 sold everything. Pool 28.125 = 1*25 + 0.01*25^2/2.
    ("AAA", Decimal("1.25"), Decimal("4.17"), Decimal("-3.85"), Decimal("13.64"),
     Decimal("18.625"), 2, Decimal("28.125"), Decimal("25"), NOW),
    # Never traded: every change is 0.00 against the listing price.
    ("IDLE", Decimal("1.00"), Decimal("0.00"), Decimal("0.00"), Decimal("0.00"),
     Decimal("0"), 0, Decimal("0"), Decimal("0"), NOW),
    # Listed 30 minutes ago: every period reaches back before its first trade, so each change
    # is against its first price, base_price 2.00: (2.20 - 2.00) / 2.00 = +10 %.
    ("NEW", Decimal("2.20"), Decimal("10.00"), Decimal("10.00"), Decimal("10.00"),
     Decimal("8.4"), 1, Decimal("8.4"), Decimal("4"), NOW),
]


def test_refresh_computes_every_column_exactly(db: psycopg.Connection) -> None:
    build_market(db)
    assert db.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,)).fetchone()[0] == 3
    assert cache(db) == EXPECTED


def test_a_second_refresh_at_the_same_time_changes_nothing(db: psycopg.Connection) -> None:
    build_market(db)
    db.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,))
    first = cache(db)
    assert db.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,)).fetchone()[0] == 3
    assert cache(db) == first == EXPECTED


def test_a_trade_one_microsecond_inside_the_window_counts(db: psycopg.Connection) -> None:
    user = new_user(db)
    new_issuer(db, "EDGE")
    trade(db, "EDGE", user, "buy", 10, NOW - timedelta(hours=24))                  # 10.5
    trade(db, "EDGE", user, "buy", 10, NOW - timedelta(hours=24) + timedelta(microseconds=1))
    db.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,))
    volume, change = db.execute(
        "select volume_24h, price_24h_change from public.issuer_stats_cache"
        " where ticker = 'EDGE'"
    ).fetchone()
    # Only the second buy (1.10 * 10 + 0.5 = 11.5) is in (NOW - 24 h, NOW]; the reference
    # price is the tick exactly 24 h old (1.10): (1.20 - 1.10) / 1.10 = +9.09 %.
    assert (volume, change) == (Decimal("11.5"), Decimal("9.09"))


def test_later_refresh_moves_the_windows(db: psycopg.Connection) -> None:
    build_market(db)
    later = NOW + timedelta(hours=1)
    db.execute("select public.refresh_issuer_stats_cache(%s)", (later,))
    row = db.execute(
        "select price_1h_change, price_24h_change, volume_24h, cached_at"
        " from public.issuer_stats_cache where ticker = 'AAA'"
    ).fetchone()
    # At 13:00 the 1 h reference is the 11:30 tick (1.25): 0.00 %; the 24 h reference is the
    # tick of 12:00 the day before (1.30); the volume is unchanged.
    assert row == (Decimal("0.00"), Decimal("-3.85"), Decimal("18.625"), later)


def test_delisted_issuers_leave_the_cache(db: psycopg.Connection) -> None:
    build_market(db)
    new_issuer(db, "BYE")
    db.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,))
    assert [r[0] for r in cache(db)] == ["AAA", "BYE", "IDLE", "NEW"]
    db.execute("delete from public.issuer_details where ticker = 'BYE'")
    assert db.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,)).fetchone()[0] == 3
    assert [r[0] for r in cache(db)] == ["AAA", "IDLE", "NEW"]


def test_guide_call_without_arguments_uses_now(db: psycopg.Connection) -> None:
    new_issuer(db, "ONE")
    db.execute("select refresh_issuer_stats_cache()")
    assert db.execute(
        "select cached_at = now() from public.issuer_stats_cache where ticker = 'ONE'"
    ).fetchone()[0] is True


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_read_the_cache_but_cannot_refresh_it(db: psycopg.Connection, role: str) -> None:
    new_issuer(db, "ONE")
    db.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,))
    with as_role(db, role):
        assert db.execute(
            "select ticker, current_price from public.issuer_stats_cache"
        ).fetchall() == [("ONE", Decimal("1.00"))]
    db.execute("savepoint denied")
    with as_role(db, role), pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("select public.refresh_issuer_stats_cache()")
    db.execute("rollback to savepoint denied")


def test_service_role_can_refresh(db: psycopg.Connection) -> None:
    new_issuer(db, "ONE")
    with as_role(db, "service_role"):
        assert db.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,)).fetchone()[0] == 1


def test_refresh_and_trading_never_wait_on_each_other(market: Cluster) -> None:
    with market.connect(autocommit=True) as setup:
        build_market(setup)
    # A refresh still open in one session does not hold up a trade's row locks ...
    with market.connect() as refresher, market.connect() as trader:
        refresher.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,))
        trader.execute("set lock_timeout = '2s'")
        trader.execute("select * from public.issuer_trading where ticker = 'AAA' for update")
        trader.execute("update public.issuer_trading set total_usdp = total_usdp + 1"
                       " where ticker = 'AAA'")
        trader.execute("update public.portfolio set updated_at = now() where ticker = 'AAA'")
        trader.rollback()
        refresher.commit()
    # ... and a trade in progress does not hold up a refresh.
    with market.connect() as trader, market.connect() as refresher:
        trader.execute("select * from public.issuer_trading where ticker = 'AAA' for update")
        trader.execute("update public.portfolio set updated_at = now() where ticker = 'AAA'")
        refresher.execute("set lock_timeout = '2s'")
        assert refresher.execute(
            "select public.refresh_issuer_stats_cache(%s)", (NOW,)
        ).fetchone()[0] == 3
        refresher.commit()
        trader.rollback()


def test_readers_see_the_old_cache_or_the_new_one_never_a_mix(market: Cluster) -> None:
    with market.connect(autocommit=True) as setup:
        build_market(setup)
        setup.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,))
    later = NOW + timedelta(minutes=5)
    with market.connect() as refresher, market.connect(autocommit=True) as reader:
        refresher.execute("select public.refresh_issuer_stats_cache(%s)", (later,))
        # Refreshed but not committed: a reader sees every row as of the previous refresh.
        assert reader.execute(
            "select array_agg(distinct cached_at), count(*) from public.issuer_stats_cache"
        ).fetchone() == ([NOW], 3)
        refresher.commit()
        assert reader.execute(
            "select array_agg(distinct cached_at), count(*) from public.issuer_stats_cache"
        ).fetchone() == ([later], 3)


def test_an_extreme_move_does_not_break_the_refresh(db: psycopg.Connection) -> None:
    user = new_user(db)
    new_issuer(db, "TINY", base_price="0.000001", price_step="0.01")
    trade(db, "TINY", user, "buy", 100000, NOW - timedelta(minutes=5))  # price -> 1000.000001
    db.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,))
    assert db.execute(
        "select price_1h_change from public.issuer_stats_cache where ticker = 'TINY'"
    ).fetchone()[0] == Decimal("100000000000.00")


def test_two_refreshes_take_turns(market: Cluster) -> None:
    with market.connect(autocommit=True) as setup:
        build_market(setup)
    with market.connect() as first, market.connect() as second:
        first.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,))
        second.execute("set lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            second.execute("select public.refresh_issuer_stats_cache(%s)", (NOW,))
        second.rollback()
        first.commit()
        assert second.execute(
            "select public.refresh_issuer_stats_cache(%s)", (NOW,)
        ).fetchone()[0] == 3
        second.commit()
