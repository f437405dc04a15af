"""snapshot_hourly_prices() and get_ohlc_data(): hand-computed candles at fixed times, an hour
without trades, no candle before the first trade, idempotency, catch-up after missed runs
(bounded), late trades, and charts of every interval served from candles and ticks alike."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest

from conftest import as_role, new_issuer, new_user
from jobs_support import at, trade

CANDLE = ("bucket_start, open, high, low, close, volume_usdp, volume_pv, trade_count,"
          " supply_close")
D = Decimal


def build_market(conn: psycopg.Connection) -> None:
    """CND on the default curve: two buys at 10:15 and 10:45, nothing at 11:xx, a buy at
    exactly 12:00 and a sell at 12:30. LATE's first trade is in the open hour 13:xx; IDLE
    never trades."""
    buyer, seller = new_user(conn), new_user(conn)
    new_issuer(conn, "CND")
    trade(conn, "CND", buyer, "buy", 10, at("2026-03-10 10:15"))   # 10.5  -> 1.10, S 10
    trade(conn, "CND", buyer, "buy", 10, at("2026-03-10 10:45"))   # 11.5  -> 1.20, S 20
    trade(conn, "CND", seller, "buy", 10, at("2026-03-10 12:00"))  # 12.5  -> 1.30, S 30
    trade(conn, "CND", seller, "sell", 5, at("2026-03-10 12:30"))  # 6.375 -> 1.25, S 25
    new_issuer(conn, "LATE")
    trade(conn, "LATE", buyer, "buy", 10, at("2026-03-10 13:02"))
    new_issuer(conn, "IDLE")


def candles(conn: psycopg.Connection, ticker: str = "CND") -> list[tuple]:
    return conn.execute(
        f"select {CANDLE} from public.price_candles_hourly where ticker = %s"
        " order by bucket_start", (ticker,),
    ).fetchall()


def snapshot(conn: psycopg.Connection, now: str, backfill: str = "7 days") -> int:
    return conn.execute(
        "select public.snapshot_hourly_prices(%s::interval, %s)", (backfill, at(now))
    ).fetchone()[0]


FIRST_THREE = [
    # The first candle opens at the listing price; high and low span open and ticks.
    (at("2026-03-10 10:00"), D("1.00"), D("1.20"), D("1.00"), D("1.20"), D("22.0"), D("20"),
     2, D("20")),
    # No trade at 11:xx: the previous close carried, volume 0.
    (at("2026-03-10 11:00"), D("1.20"), D("1.20"), D("1.20"), D("1.20"), D("0"), D("0"),
     0, D("20")),
    # The buy at exactly 12:00:00 belongs to the 12:00 hour.
    (at("2026-03-10 12:00"), D("1.20"), D("1.30"), D("1.20"), D("1.25"), D("18.875"),
     D("15"), 2, D("25")),
]


def test_snapshot_writes_each_closed_hour_from_the_first_trade(db: psycopg.Connection) -> None:
    build_market(db)
    assert snapshot(db, "2026-03-10 13:05") == 3
    assert candles(db) == FIRST_THREE
    # LATE first traded in the hour still open, IDLE never: no candles for either.
    assert candles(db, "LATE") == []
    assert candles(db, "IDLE") == []


def test_running_twice_changes_nothing(db: psycopg.Connection) -> None:
    build_market(db)
    snapshot(db, "2026-03-10 13:05")
    before = db.execute(
        "select ctid, * from public.price_candles_hourly order by ticker, bucket_start"
    ).fetchall()
    assert snapshot(db, "2026-03-10 13:05") == 0
    assert snapshot(db, "2026-03-10 13:59:59.999999") == 0
    after = db.execute(
        "select ctid, * from public.price_candles_hourly order by ticker, bucket_start"
    ).fetchall()
    assert after == before


def test_a_missed_run_is_caught_up(db: psycopg.Connection) -> None:
    build_market(db)
    snapshot(db, "2026-03-10 13:05")
    buyer = new_user(db)
    trade(db, "CND", buyer, "buy", 5, at("2026-03-10 14:20"))  # 6.375 -> 1.30, S 30
    # Cron was down at 14:00, 15:00 and 16:00; the 17:00 run writes 13:00 to 16:00.
    assert snapshot(db, "2026-03-10 17:00") == 4 + 4  # CND and LATE, 13:00 to 16:00 each
    assert candles(db)[3:] == [
        (at("2026-03-10 13:00"), D("1.25"), D("1.25"), D("1.25"), D("1.25"), D("0"), D("0"),
         0, D("25")),
        (at("2026-03-10 14:00"), D("1.25"), D("1.30"), D("1.25"), D("1.30"), D("6.375"),
         D("5"), 1, D("30")),
        (at("2026-03-10 15:00"), D("1.30"), D("1.30"), D("1.30"), D("1.30"), D("0"), D("0"),
         0, D("30")),
        (at("2026-03-10 16:00"), D("1.30"), D("1.30"), D("1.30"), D("1.30"), D("0"), D("0"),
         0, D("30")),
    ]
    assert candles(db)[:3] == FIRST_THREE
    assert [r[0] for r in candles(db, "LATE")] == [
        at("2026-03-10 13:00"), at("2026-03-10 14:00"), at("2026-03-10 15:00"),
        at("2026-03-10 16:00")]


def test_catch_up_is_bounded_and_starts_from_the_right_price(db: psycopg.Connection) -> None:
    build_market(db)
    snapshot(db, "2026-03-10 13:05")
    db.execute("delete from public.price_candles_hourly where ticker <> 'CND'")
    # Ten days without a run: only the last 7 days (168 hours) are written, for CND and LATE.
    written = snapshot(db, "2026-03-20 13:30")
    rows = candles(db)
    assert written == 2 * 168
    assert len(rows) == 3 + 168
    assert rows[3][0] == at("2026-03-13 13:00")
    assert rows[-1][0] == at("2026-03-20 12:00")
    assert {r[1:] for r in rows[3:]} == {
        (D("1.25"), D("1.25"), D("1.25"), D("1.25"), D("0"), D("0"), 0, D("25"))}
    # A longer backfill fills the hours the bounded run left out, and nothing else changes.
    # 2026-03-10 13:00 to 2026-03-13 12:00 is 72 hours, for each issuer.
    assert snapshot(db, "2026-03-20 13:30", "30 days") == 2 * 72
    assert len(candles(db)) == (at("2026-03-20 13:00") - at("2026-03-10 10:00")) // timedelta(
        hours=1)


def test_a_trade_recorded_late_is_folded_into_its_hour(db: psycopg.Connection) -> None:
    build_market(db)
    snapshot(db, "2026-03-10 13:05")
    # A trade stamped 12:59:59 that committed after the 13:00 run: the 14:00 run rewrites
    # the last two closed hours, so the 12:00 candle gets it.
    buyer = new_user(db)
    trade(db, "CND", buyer, "buy", 5, at("2026-03-10 12:59:59"))  # 6.375 -> 1.30, S 30
    assert snapshot(db, "2026-03-10 14:05") == 1 + 1 + 1  # CND 12:00 fixed, 13:00 new; LATE
    assert candles(db)[2:] == [
        (at("2026-03-10 12:00"), D("1.20"), D("1.30"), D("1.20"), D("1.30"), D("25.250"),
         D("20"), 3, D("30")),
        (at("2026-03-10 13:00"), D("1.30"), D("1.30"), D("1.30"), D("1.30"), D("0"), D("0"),
         0, D("30")),
    ]


def test_hours_are_utc_whatever_the_session_time_zone(db: psycopg.Connection) -> None:
    db.execute("set local timezone = 'Asia/Kolkata'")  # +05:30
    build_market(db)
    assert snapshot(db, "2026-03-10 13:05") == 3
    db.execute("set local timezone = 'UTC'")
    assert candles(db) == FIRST_THREE


# --- get_ohlc_data -------------------------------------------------------------------------

OHLC = "select * from public.get_ohlc_data(%s, %s, %s, %s, %s)"


def ohlc(conn: psycopg.Connection, interval: str, start: str, end: str, now: str,
         ticker: str = "CND") -> list[tuple]:
    return conn.execute(OHLC, (ticker, interval, at(start), at(end), at(now))).fetchall()


HOURLY = [
    (at("2026-03-10 10:00"), D("1.00"), D("1.20"), D("1.00"), D("1.20"), D("22.0"),
     D("1.10000000")),
    (at("2026-03-10 11:00"), D("1.20"), D("1.20"), D("1.20"), D("1.20"), D("0"), None),
    (at("2026-03-10 12:00"), D("1.20"), D("1.30"), D("1.20"), D("1.25"), D("18.875"),
     D("1.25833333")),
    # The hour still open at 13:05: from the ticks, flat so far.
    (at("2026-03-10 13:00"), D("1.25"), D("1.25"), D("1.25"), D("1.25"), D("0"), None),
]


@pytest.mark.parametrize("snapshotted", [True, False], ids=["from-candles", "from-ticks"])
def test_hourly_chart_is_the_same_from_candles_or_ticks(db: psycopg.Connection,
                                                        snapshotted: bool) -> None:
    build_market(db)
    if snapshotted:
        snapshot(db, "2026-03-10 13:05")
    assert ohlc(db, "1 hour", "2026-03-10 08:00", "2026-03-10 18:00", "2026-03-10 13:05") \
        == HOURLY


def test_multi_hour_buckets_aggregate_the_hours(db: psycopg.Connection) -> None:
    build_market(db)
    snapshot(db, "2026-03-10 13:05")
    assert ohlc(db, "2 hours", "2026-03-10 09:00", "2026-03-10 18:00", "2026-03-10 13:05") == [
        (at("2026-03-10 10:00"), D("1.00"), D("1.20"), D("1.00"), D("1.20"), D("22.0"),
         D("1.10000000")),
        (at("2026-03-10 12:00"), D("1.20"), D("1.30"), D("1.20"), D("1.25"), D("18.875"),
         D("1.25833333")),
    ]
    assert ohlc(db, "1 day", "2026-03-10 00:00", "2026-03-11 00:00", "2026-03-10 13:05") == [
        (at("2026-03-10 00:00"), D("1.00"), D("1.30"), D("1.00"), D("1.25"), D("40.875"),
         D("1.16785714")),
    ]


def test_finer_intervals_come_from_the_ticks(db: psycopg.Connection) -> None:
    build_market(db)
    snapshot(db, "2026-03-10 13:05")
    rows = ohlc(db, "30 minutes", "2026-03-10 10:10", "2026-03-10 13:30", "2026-03-10 13:05")
    assert rows == [
        (at("2026-03-10 10:00"), D("1.00"), D("1.10"), D("1.00"), D("1.10"), D("10.5"),
         D("1.05000000")),
        (at("2026-03-10 10:30"), D("1.10"), D("1.20"), D("1.10"), D("1.20"), D("11.5"),
         D("1.15000000")),
        (at("2026-03-10 11:00"), D("1.20"), D("1.20"), D("1.20"), D("1.20"), D("0"), None),
        (at("2026-03-10 11:30"), D("1.20"), D("1.20"), D("1.20"), D("1.20"), D("0"), None),
        (at("2026-03-10 12:00"), D("1.20"), D("1.30"), D("1.20"), D("1.30"), D("12.5"),
         D("1.25000000")),
        (at("2026-03-10 12:30"), D("1.30"), D("1.30"), D("1.25"), D("1.25"), D("6.375"),
         D("1.27500000")),
        (at("2026-03-10 13:00"), D("1.25"), D("1.25"), D("1.25"), D("1.25"), D("0"), None),
    ]
    minutes = ohlc(db, "1 minute", "2026-03-10 12:29", "2026-03-10 12:32", "2026-03-10 13:05")
    assert [(r[0], r[1], r[4], r[5]) for r in minutes] == [
        (at("2026-03-10 12:29"), D("1.30"), D("1.30"), D("0")),
        (at("2026-03-10 12:30"), D("1.30"), D("1.25"), D("6.375")),
        (at("2026-03-10 12:31"), D("1.25"), D("1.25"), D("0")),
    ]


def test_no_candles_before_the_first_trade_or_for_untraded_issuers(db: psycopg.Connection) -> None:
    build_market(db)
    assert ohlc(db, "1 hour", "2026-03-10 00:00", "2026-03-10 10:00", "2026-03-10 13:05") == []
    assert ohlc(db, "1 hour", "2026-03-10 00:00", "2026-03-11 00:00", "2026-03-10 13:05",
                "IDLE") == []


@pytest.mark.parametrize("interval", ["0 minutes", "30 seconds", "90 seconds", "25 hours",
                                      "2 days", "1 month", "banana", "-1 hour"])
def test_bad_intervals_are_rejected_clearly(db: psycopg.Connection, interval: str) -> None:
    build_market(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_interval must be"):
        ohlc(db, interval, "2026-03-10 00:00", "2026-03-11 00:00", "2026-03-10 13:05")


def test_bad_ranges_and_tickers_are_rejected(db: psycopg.Connection) -> None:
    build_market(db)
    db.execute("savepoint s")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="before p_end_time"):
        ohlc(db, "1 hour", "2026-03-11 00:00", "2026-03-10 00:00", "2026-03-12 00:00")
    db.execute("rollback to savepoint s")
    with pytest.raises(psycopg.errors.NoDataFound, match="unknown ticker 'NOPE'"):
        ohlc(db, "1 hour", "2026-03-10 00:00", "2026-03-11 00:00", "2026-03-12 00:00", "NOPE")
    db.execute("rollback to savepoint s")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="at most 10000 candles"):
        ohlc(db, "1 minute", "2026-03-01 00:00", "2026-03-10 00:00", "2026-03-12 00:00")


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_get_charts_with_volumes_they_cannot_read_row_by_row(
    db: psycopg.Connection, role: str,
) -> None:
    build_market(db)
    snapshot(db, "2026-03-10 13:05")
    with as_role(db, role):
        assert ohlc(db, "1 hour", "2026-03-10 08:00", "2026-03-10 18:00",
                    "2026-03-10 13:05") == HOURLY
        assert db.execute(
            "select count(*) from public.price_candles_hourly where ticker = 'CND'"
        ).fetchone()[0] == 3
        db.execute("savepoint denied")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("select public.snapshot_hourly_prices()")
        db.execute("rollback to savepoint denied")
