"""Test-only helpers for the job tests: record trades directly as consistent rows (queue,
transactions, price_history, portfolio, issuer_trading) at chosen times, the way the order
processor would leave them, so stats, candles and cleanup can be checked at fixed times
without depending on the matching engine."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal

import psycopg

UTC = timezone.utc


# The job tests are written on a fixed calendar (March 2026), but the jobs refuse a p_now
# more than 31 days back (pauv.checked_now). at() moves that calendar by whole days so its
# last day, 2026-03-20, is yesterday: hours, days and their UTC alignment stay as written.
CALENDAR_END = date(2026, 3, 21)
CALENDAR_SHIFT = timedelta(days=(datetime.now(UTC).date() - CALENDAR_END).days)


def at(text: str) -> datetime:
    """The UTC time 'YYYY-MM-DD HH:MM[:SS[.ffffff]]' of the tests' calendar, moved by
    CALENDAR_SHIFT whole days into the recent past."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC) + CALENDAR_SHIFT


def trade(conn: psycopg.Connection, ticker: str, user_id: uuid.UUID, order_type: str,
          pv: Decimal | str | int, when: datetime) -> Decimal:
    """Execute `pv` tokens on the curve at `when` and record it everywhere; returns the USDP.

    A buy costs p*n + s*n^2/2 exactly, a sell pays p*n - s*n^2/2 rounded down to 1e-6, as
    DESIGN.md's curve rules say; the test picks amounts whose cost has at most 6 decimals."""
    n = Decimal(pv)
    b, s, supply, pool = conn.execute(
        "select base_price, price_step, current_supply, total_usdp"
        " from public.issuer_trading where ticker = %s", (ticker,),
    ).fetchone()
    start_price = b + s * supply
    if order_type == "buy":
        usdp = start_price * n + s * n * n / 2
        assert usdp == usdp.quantize(Decimal("0.000001")), "pick a buy whose cost has 6 decimals"
        new_supply, new_pool = supply + n, pool + usdp
    else:
        usdp = (start_price * n - s * n * n / 2).quantize(Decimal("0.000001"), ROUND_DOWN)
        new_supply, new_pool = supply - n, pool - usdp
    end_price = b + s * new_supply
    queue_column = "amount_usdp" if order_type == "buy" else "amount_pv"
    queue_id = conn.execute(
        f"insert into public.queue (user_id, ticker, order_type, {queue_column}, status, date,"
        " processed_at) values (%s, %s, %s, %s, 'completed', %s, %s) returning id",
        (user_id, ticker, order_type, usdp if order_type == "buy" else n, when, when),
    ).fetchone()[0]
    transaction_id = conn.execute(
        "insert into public.transactions (user_id, amount_usdp, ticker, order_type,"
        " avg_price_paid, pv_traded, start_price, end_price, date, queue_id)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning id",
        (user_id, usdp, ticker, order_type, usdp / n, n, start_price, end_price, when, queue_id),
    ).fetchone()[0]
    conn.execute(
        "insert into public.price_history (ticker, price, supply, timestamp, transaction_id)"
        " values (%s, %s, %s, %s, %s)",
        (ticker, end_price, new_supply, when, transaction_id),
    )
    conn.execute(
        "update public.issuer_trading set current_supply = %s, total_usdp = %s where ticker = %s",
        (new_supply, new_pool, ticker),
    )
    # The money side, so the market stays consistent (the fixtures audit it): a buyer is
    # funded with exactly what the buy costs and pays it; a seller is paid.
    if order_type == "buy":
        conn.execute("select public.deposit_usdp(%s, %s)", (user_id, usdp))
    conn.execute(
        "update public.users set usdp_balance = usdp_balance + %s where user_id = %s",
        (-usdp if order_type == "buy" else usdp, user_id),
    )
    held = conn.execute(
        "select pv_amount from public.portfolio where user_id = %s and ticker = %s",
        (user_id, ticker),
    ).fetchone()
    held_amount = held[0] if held else Decimal(0)
    new_held = held_amount + n if order_type == "buy" else held_amount - n
    assert new_held >= 0, "a test sold more than the user holds"
    conn.execute(
        "insert into public.portfolio (user_id, ticker, pv_amount, avg_cost_basis)"
        " values (%s, %s, %s, %s) on conflict (user_id, ticker) do update"
        " set pv_amount = excluded.pv_amount, avg_cost_basis = excluded.avg_cost_basis",
        (user_id, ticker, new_held, (usdp / n) if new_held > 0 else 0),
    )
    return usdp


def hours(n: int) -> timedelta:
    return timedelta(hours=n)
