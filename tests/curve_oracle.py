"""An exact model of DESIGN.md's curve in Python fractions: the oracle the SQL engine is
checked against. Test code only."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from math import isqrt

PV_TICK = Fraction(1, 10**8)
USDP_TICK = Fraction(1, 10**6)


def _dec(x: Fraction, places: int) -> Decimal:
    """An exact Fraction with a terminating expansion as a Decimal."""
    scaled = x * 10**places
    assert scaled.denominator == 1, f"{x} does not fit {places} decimals"
    return Decimal(scaled.numerator).scaleb(-places)


def buy_quantity(price: Fraction, step: Fraction, usdp: Fraction) -> Fraction:
    """Largest n on the 1e-8 grid with price*n + step*n^2/2 <= usdp."""
    # With n = k/1e8: step*k^2 + 2e8*price*k - 2e16*usdp <= 0; solve for k exactly.
    a, b, c = step, 2 * 10**8 * price, -2 * 10**16 * usdp
    disc = b * b - 4 * a * c
    k = int((-b + Fraction(isqrt(disc.numerator * disc.denominator), disc.denominator)) / (2 * a))
    k = max(k, 0)
    while k > 0 and a * k * k + b * k + c > 0:
        k -= 1
    while a * (k + 1) ** 2 + b * (k + 1) + c <= 0:
        k += 1
    return k * PV_TICK


def sell_payout(price: Fraction, step: Fraction, pv: Fraction) -> Fraction:
    """price*pv - step*pv^2/2 rounded down to 1e-6."""
    exact = price * pv - step * pv * pv / 2
    return Fraction(int(exact / USDP_TICK)) * USDP_TICK


@dataclass
class Market:
    """One issuer and its traders, executing orders in order as DESIGN.md says."""

    base: Fraction
    step: Fraction
    supply: Fraction = Fraction(0)
    pool: Fraction = Fraction(0)
    balances: dict = field(default_factory=dict)
    holdings: dict = field(default_factory=dict)
    trades: int = 0
    dust_allowance: Fraction = Fraction(0)

    @property
    def price(self) -> Fraction:
        return self.base + self.step * self.supply

    def buy(self, user, usdp: Fraction) -> tuple[str, Fraction, Fraction]:
        if not (Fraction(1, 100) <= usdp <= 1_000_000):
            return ("failed", 0, 0)
        if self.balances[user] < usdp:
            return ("failed", 0, 0)
        n = buy_quantity(self.price, self.step, usdp)
        if n == 0:
            return ("failed", 0, 0)
        self.balances[user] -= usdp
        self.holdings[user] = self.holdings.get(user, 0) + n
        self.supply += n
        self.pool += usdp
        self._trade()
        return ("completed", n, usdp)

    def sell(self, user, pv: Fraction) -> tuple[str, Fraction, Fraction]:
        if not (Fraction(1, 100) <= pv <= 1_000_000):
            return ("failed", 0, 0)
        if self.holdings.get(user, 0) < pv:
            return ("failed", 0, 0)
        usdp = sell_payout(self.price, self.step, pv)
        if usdp == 0:
            return ("failed", 0, 0)
        self.balances[user] += usdp
        self.holdings[user] -= pv
        self.supply -= pv
        self.pool -= usdp
        self._trade()
        return ("completed", pv, usdp)

    def _trade(self) -> None:
        self.trades += 1
        self.dust_allowance += max(USDP_TICK, self.price * PV_TICK + self.step * PV_TICK**2)

    def curve_value(self) -> Fraction:
        return self.base * self.supply + self.step * self.supply**2 / 2


def dec_usdp(x: Fraction) -> Decimal:
    return _dec(x, 6)


def dec_pv(x: Fraction) -> Decimal:
    return _dec(x, 8)
