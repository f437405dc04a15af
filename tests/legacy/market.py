"""A realistic legacy market, made ONLY through the legacy schema's own rules, the way
upstream's app and edge function drive it (§9), so the data shows what §10 measured:
runaway decimals, drift from overlapping processors, NULL queue_ids, pending orders.

Python here plays upstream's app (its API checks and call order), nothing more: every
balance, holding, price and trade is written by the legacy triggers and functions."""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from decimal import ROUND_DOWN, Decimal

import psycopg

from harness import Cluster

TICKER_FORMAT = re.compile(r"^[A-Z0-9]{2,10}$")
MAX_PENDING_PER_USER = 5
# Listed by the admin API: three of the seeded profiles, eight new ones.
SEEDED_TO_LIST = ("JXSTERLING", "ARVANE", "MINKAMOON")
NEW_ISSUERS = ("NOVARAY", "KAIZEN", "LUMOS", "VEXA", "ORBIT", "MIRAJ", "TALLY", "QUILL",
               "ZEPHYR", "CASPIAN", "BRAVO", "DELTA9")


def _as_service_role(conn: psycopg.Connection) -> None:
    """What supabase-js with the service-role key does: PostgREST's role and claims."""
    conn.execute("select set_config('role', 'service_role', false),"
                 " set_config('request.jwt.claims', '{\"role\": \"service_role\"}', false)")


class LegacyApp:
    """Upstream's app server and payment webhook, as far as they write the database."""

    def __init__(self, conn: psycopg.Connection, rng: random.Random):
        self.conn = conn
        self.rng = rng
        self.net_deposits = Decimal(0)
        self.orders_placed = 0
        self.orders_refused = 0

    # sign-up: GoTrue inserts into auth.users; upstream's trigger creates the users row
    def sign_up(self, i: int) -> uuid.UUID:
        user_id = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        name = f"trader{i:04d}"
        meta = {"username": name} if self.rng.random() < 0.6 else {}
        with self.conn.transaction():
            self.conn.execute("reset role")
            self.conn.execute(
                "insert into auth.users (id, aud, role, email, raw_user_meta_data)"
                " values (%s, 'authenticated', 'authenticated', %s, %s)",
                (user_id, f"{name}@example.test", json.dumps(meta)))
            _as_service_role(self.conn)
        return user_id

    def _credit(self, user_id: uuid.UUID, amount: Decimal) -> Decimal | None:
        return self.conn.execute("select public.increment_user_balance(%s, %s)",
                                 (user_id, amount)).fetchone()[0]

    def deposit(self, user_id: uuid.UUID, cents: int, returned: bool = False) -> None:
        """Checkout row pending; on success the webhook credits cents/100 and marks it
        succeeded; a returned payment is reversed with a negative increment."""
        with self.conn.transaction():
            checkout = f"chk_{self.rng.getrandbits(64):016x}"
            self.conn.execute(
                "insert into public.payment_transactions (user_id, checkout_id, type, amount_cents)"
                " values (%s, %s, 'deposit', %s)", (user_id, checkout, cents))
            balance = self._credit(user_id, Decimal(cents) / 100)
            self.conn.execute(
                "update public.payment_transactions set status = 'succeeded', balance_after = %s"
                " where checkout_id = %s", (balance, checkout))
            self.net_deposits += Decimal(cents) / 100
            if returned:
                balance = self._credit(user_id, -Decimal(cents) / 100)
                self.conn.execute(
                    "update public.payment_transactions set status = 'returned',"
                    " balance_after = %s where checkout_id = %s", (balance, checkout))
                self.net_deposits -= Decimal(cents) / 100

    def withdraw(self, user_id: uuid.UUID, cents: int) -> None:
        """Debit first, then insert the row as 'reserved', which the CHECK rejects
        (LEGACY BUG), upon which the route refunds: net zero, no row."""
        with self.conn.transaction():
            self._credit(user_id, -Decimal(cents) / 100)
            try:
                with self.conn.transaction():
                    self.conn.execute(
                        "insert into public.payment_transactions (user_id, type, status,"
                        " amount_cents) values (%s, 'withdrawal', 'reserved', %s)",
                        (user_id, cents))
            except psycopg.errors.CheckViolation:
                self._credit(user_id, Decimal(cents) / 100)

    def list_issuer(self, ticker: str, seeded: bool, base: Decimal | None,
                    step: Decimal | None) -> None:
        """The admin API: a profile (unless seeded) and the trading row; it sends
        current_price = base when it sends a base (else price would start at 1.0)."""
        with self.conn.transaction():
            if not seeded:
                self.conn.execute(
                    "insert into public.issuer_details (name, ticker, is_hidden)"
                    " values (%s, %s, false)", (ticker.title(), ticker))
            else:
                self.conn.execute("update public.issuer_details set is_hidden = false"
                                  " where ticker = %s", (ticker,))
            cols, vals = ["ticker"], [ticker]
            if base is not None:
                cols += ["base_price", "current_price"]
                vals += [base, base]
            if step is not None:
                cols.append("price_step")
                vals.append(step)
            self.conn.execute(
                f"insert into public.issuer_trading ({', '.join(cols)})"
                f" values ({', '.join(['%s'] * len(vals))})", vals)

    def place_order(self, user_id: uuid.UUID, ticker: str, order_type: str,
                    amount: Decimal) -> bool:
        """POST /api/orders: the API's checks, then one service-role INSERT."""
        ticker = ticker.upper()
        if not (Decimal("0.01") <= amount <= Decimal(1_000_000)) or not TICKER_FORMAT.match(ticker):
            self.orders_refused += 1
            return False
        with self.conn.transaction():
            pending = self.conn.execute(
                "select count(*) from public.queue where user_id = %s and status = 'pending'",
                (user_id,)).fetchone()[0]
            if pending >= MAX_PENDING_PER_USER:
                self.orders_refused += 1
                return False
            self.conn.execute(
                "insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv,"
                " status) values (%s, %s, %s, %s, %s, 'pending')",
                (user_id, ticker, order_type, amount if order_type == "buy" else 0,
                 amount if order_type == "sell" else 0))
        self.orders_placed += 1
        return True


def _typed_amount(rng: random.Random) -> Decimal:
    """What users type into the buy form: mostly round, sometimes cents, rarely more."""
    r = rng.random()
    if r < 0.55:
        return Decimal(rng.choice([5, 10, 10, 20, 25, 50, 50, 100, 150, 200]))
    if r < 0.92:
        return Decimal(rng.randint(100, 30_000)) / 100
    return Decimal(rng.randint(1, 10**7)) / Decimal(10**rng.randint(4, 7))


def _sell_amount(rng: random.Random, holding: Decimal) -> Decimal:
    """Sell All (truncated to 4 decimals), a typed part with many decimals, or a round one."""
    r = rng.random()
    if r < 0.2:
        return holding.quantize(Decimal("0.0001"), rounding=ROUND_DOWN)
    if r < 0.5:
        return (holding * Decimal(rng.uniform(0.05, 0.9))).quantize(
            Decimal(10) ** -rng.randint(5, 12), rounding=ROUND_DOWN)
    return Decimal(max(1, int(holding * Decimal(rng.uniform(0.1, 0.6)))))


def _place_round(app: LegacyApp, users: list[uuid.UUID], tickers: list[str], count: int) -> int:
    """`count` orders from random users: ~70 % buys, sells against current holdings,
    a few buys beyond the balance (they fail when processed)."""
    rng, conn = app.rng, app.conn
    holdings = conn.execute(
        "select user_id, ticker, pv_amount from public.portfolio where pv_amount >= 0.01"
    ).fetchall()
    balances = dict(conn.execute("select user_id, usdp_balance from public.users").fetchall())
    placed = attempts = 0
    while placed < count and attempts < count * 4:
        attempts += 1
        if holdings and rng.random() < 0.3:
            user_id, ticker, pv = rng.choice(holdings)
            ok = app.place_order(user_id, ticker, "sell", _sell_amount(rng, pv))
        else:
            user_id = rng.choice(users)
            amount = _typed_amount(rng)
            if rng.random() < 0.97:
                amount = min(amount, max(Decimal("0.01"), (balances.get(user_id) or 0) / 4))
                amount = amount.quantize(Decimal("0.01"), rounding=ROUND_DOWN) \
                    if amount.as_tuple().exponent < -7 else amount
            ok = app.place_order(user_id, rng.choice(tickers).lower() if rng.random() < 0.1
                                 else rng.choice(tickers), "buy", amount)
        placed += ok
    return placed


def _pending(conn: psycopg.Connection) -> int:
    return conn.execute("select count(*) from public.queue where status = 'pending'").fetchone()[0]


def _drain_edge_function(conn: psycopg.Connection, max_calls: int = 400) -> int:
    """The edge function, woken once per order: process_all_pending_orders() until the
    queue is empty (it stops at each failure, so it takes several calls)."""
    calls = 0
    while _pending(conn) and calls < max_calls:
        conn.execute("select public.process_all_pending_orders()")
        calls += 1
    return calls


def _drain_concurrently(cluster: Cluster, callers: int = 3) -> None:
    """Three overlapping edge-function invocations on separate connections (the per-row
    webhook makes them): each calls process_all_pending_orders() until nothing is left."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with cluster.connect(autocommit=True) as conn:
                _as_service_role(conn)
                idle = 0
                while _pending(conn) and idle < 50:
                    try:
                        r = conn.execute("select public.process_all_pending_orders()").fetchone()[0]
                    except psycopg.errors.DeadlockDetected:
                        continue
                    idle = 0 if r["total_processed"] else idle + 1
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def build_legacy_market(cluster: Cluster, *, seed: int = 20260318, users: int = 201,
                        issuers: int = 11, orders: int = 2900, pending_left: int = 260,
                        concurrent_orders: int = 500) -> dict:
    """Make a market on a cluster where apply_legacy_schema() ran: sign-ups, payments,
    listings, ~`orders` orders processed by both legacy processors (one phase with three
    overlapping callers), the cleanup job once after backdating, cancellations,
    `pending_left` orders left pending and the stats refresh; then the hard cases are
    made sure of (inject_inconsistencies). Returns counts (see summarize())."""
    rng = random.Random(seed)
    with cluster.connect() as conn:
        conn.execute("select setseed(%s)", (rng.random() * 2 - 1,))
        app = LegacyApp(conn, rng)
        _as_service_role(conn)

        user_ids = [app.sign_up(i) for i in range(users)]
        for user_id in user_ids:
            for _ in range(rng.choice([1, 1, 2, 3])):
                app.deposit(user_id, rng.choice([1000, 2500, 5000, 10000, 25000, 50000])
                            + rng.randint(0, 99), returned=rng.random() < 0.02)
            if rng.random() < 0.15:
                app.withdraw(user_id, rng.randint(100, 900))

        tickers = []
        for i in range(issuers):
            if i < len(SEEDED_TO_LIST):
                ticker, seeded = SEEDED_TO_LIST[i], True
            else:
                ticker, seeded = NEW_ISSUERS[(i - len(SEEDED_TO_LIST)) % len(NEW_ISSUERS)], False
            custom = i % 4 == 3
            app.list_issuer(ticker, seeded,
                            Decimal(rng.choice(["0.50", "2.00", "5"])) if custom else None,
                            Decimal(rng.choice(["0.005", "0.02", "0.1"])) if custom else None)
            tickers.append(ticker)

        # Phase 1: one processor at a time, both paths the app uses.
        to_process = orders - pending_left - concurrent_orders
        rounds = max(1, to_process // 300)
        for r in range(rounds):
            _place_round(app, user_ids, tickers, to_process // rounds)
            if r % 3 == 2:
                while _pending(conn):
                    conn.execute("select public.process_order_batch(%s)", (rng.choice([50, 100]),))
            else:
                _drain_edge_function(conn)

        # Some orders are cancelled by their users before processing (the app's cancel).
        _place_round(app, user_ids, tickers, 40)
        conn.execute(
            "update public.queue set status = 'cancelled' where id in (select id from"
            " public.queue where status = 'pending' order by id limit 25)")
        _drain_edge_function(conn)

        # Phase 2: three overlapping callers (lost updates: drift of supply and pools).
        _place_round(app, user_ids, tickers, concurrent_orders)
    _drain_concurrently(cluster)

    with cluster.connect() as conn:
        app.conn = conn
        _as_service_role(conn)
        _backdate_and_clean(cluster, rng)
        _place_round(app, user_ids, tickers, pending_left)
        conn.execute("select public.refresh_issuer_stats_cache()")
        conn.execute("reset role")
        injected = inject_inconsistencies(conn)
        summary = summarize(conn)
    return summary | {"net_deposits": app.net_deposits, "orders_placed": app.orders_placed,
                      "orders_refused": app.orders_refused, "injected": injected}


def _backdate_and_clean(cluster: Cluster, rng: random.Random) -> None:
    """Age about half the finished orders (and their trades) by 8-30 days, as if the
    market had run for weeks, then run the cleanup job's own command once. Backdating
    bypasses the updated_at triggers (session_replication_role, superuser only)."""
    with cluster.connect("supabase_admin") as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute("select setseed(%s)", (rng.random() * 2 - 1,))
        conn.execute(
            "create temporary table aged on commit drop as"
            " select id, interval '1 day' * (8 + floor(random() * 22)) as age"
            " from public.queue where status in ('completed', 'failed') and random() < 0.5")
        conn.execute("update public.queue as q set date = q.date - a.age,"
                     " created_at = q.created_at - a.age, updated_at = q.updated_at - a.age"
                     " from aged as a where a.id = q.id")
        conn.execute("update public.transactions as t set date = t.date - a.age,"
                     " created_at = t.created_at - a.age, updated_at = t.updated_at - a.age"
                     " from aged as a where a.id = t.queue_id")
        conn.commit()
    with cluster.connect() as conn:
        command = conn.execute(
            "select command from cron.job where jobname = 'cleanup-old-queue-entries'"
        ).fetchone()[0]
        conn.execute(command)
        conn.commit()


def inject_inconsistencies(conn: psycopg.Connection) -> dict[str, int]:
    """Make sure each hard case exists at least once, whatever the random run produced
    (as 'postgres', the tables' owner). Returns how many rows each case had to touch."""
    touched: dict[str, int] = {}

    def ensure(case: str, present_sql: str, make_sql: str) -> None:
        if conn.execute(present_sql).fetchone()[0]:
            touched[case] = 0
        else:
            touched[case] = conn.execute(make_sql).rowcount

    long_tail = "('0.' || repeat('0', 519) || '7')::numeric"
    ensure("balance_over_500_decimals",
           "select exists (select 1 from public.users where scale(usdp_balance) > 500)",
           f"update public.users set usdp_balance = usdp_balance + {long_tail}"
           " where id = (select id from public.users where usdp_balance > 0 order by id limit 1)")
    ensure("holding_over_500_decimals",
           "select exists (select 1 from public.portfolio where scale(pv_amount) > 500)",
           f"update public.portfolio set pv_amount = pv_amount + {long_tail}"
           " where id = (select id from public.portfolio where pv_amount > 0 order by id limit 1)")

    drift = """
        select count(*) from public.issuer_trading as t
        where t.current_supply {op} (select coalesce(sum(p.pv_amount), 0)
                                     from public.portfolio as p where p.ticker = t.ticker)"""
    # A holding lowered: supply above the holdings; raised: below. Price stays consistent.
    # Each case is made on a ticker that is not an instance of the other, so making one
    # never undoes the other (the random run may have produced exactly one instance). The
    # overlapping callers may have left every ticker's supply below its holdings, so the
    # first case lowers the largest holdings of the ticker nearest to it, by the gap and
    # 3.5 more, as many holdings as that takes.
    held = "(select coalesce(sum(h.pv_amount), 0) from public.portfolio as h where h.ticker = t.ticker)"
    ensure("supply_above_holdings", f"select ({drift.format(op='>')}) > 0", f"""
        update public.portfolio as p
        set pv_amount = p.pv_amount - least(p.pv_amount, w.need - w.lowered_before)
        from (
            select h.id, n.need,
                sum(h.pv_amount) over (order by h.pv_amount desc, h.id) - h.pv_amount
                    as lowered_before
            from public.portfolio as h
            inner join (
                select t.ticker, {held} - t.current_supply + 3.5 as need
                from public.issuer_trading as t
                where t.current_supply >= 3.5 and {held} > 0
                order by t.current_supply - {held} desc, t.ticker
                limit 1
            ) as n on n.ticker = h.ticker
            where h.pv_amount > 0
        ) as w
        where p.id = w.id and w.lowered_before < w.need""")
    ensure("supply_below_holdings", f"select ({drift.format(op='<')}) > 0", f"""
        update public.portfolio set pv_amount = pv_amount + 2.75
        where id = (select p.id from public.portfolio as p join public.issuer_trading as t
                    using (ticker) where p.pv_amount > 0 and t.current_supply <= {held}
                    order by t.ticker desc, p.id limit 1)""")

    curve = "(t.base_price * t.current_supply + t.price_step * t.current_supply ^ 2 / 2)"
    ensure("pool_below_curve",
           f"select exists (select 1 from public.issuer_trading as t where t.total_usdp < {curve})",
           f"update public.issuer_trading as t set total_usdp = {curve} - 0.00000000000001"
           " where t.ticker = (select min(ticker) from public.issuer_trading where current_supply > 0)")
    ensure("pool_above_curve_by_usdp",
           "select exists (select 1 from public.issuer_trading as t"
           f" where t.total_usdp - {curve} between 1 and 20)",
           f"update public.issuer_trading as t set total_usdp = {curve} + 3.27"
           " where t.ticker = (select max(u.ticker) from public.issuer_trading as u"
           f" where u.current_supply > 0 and u.total_usdp >= {curve.replace('t.', 'u.')})")

    ensure("details_without_trading",
           "select exists (select 1 from public.issuer_details as d where not exists"
           " (select 1 from public.issuer_trading as t where t.ticker = d.ticker))",
           "insert into public.issuer_details (name, ticker, is_hidden)"
           " values ('Unlisted Applicant', 'UNLISTED', true)")
    ensure("trades_without_queue_id",
           "select exists (select 1 from public.transactions where queue_id is null)",
           "update public.transactions set queue_id = null"
           " where id = (select id from public.transactions order by date, id limit 1)")
    ensure("pending_sell_not_covered", """
        select exists (select 1 from public.queue as q
                       where q.status = 'pending' and q.order_type = 'sell'
                         and q.amount_pv > coalesce((select p.pv_amount from public.portfolio as p
                              where p.user_id = q.user_id and p.ticker = q.ticker), 0))""", """
        insert into public.queue (user_id, ticker, order_type, amount_usdp, amount_pv)
        select p.user_id, p.ticker, 'sell', 0, trunc(p.pv_amount, 4) + 1
        from public.portfolio as p
        where p.pv_amount > 0 and (select count(*) from public.queue as q
              where q.user_id = p.user_id and q.status = 'pending') < 5
        order by p.id limit 1""")
    conn.commit()
    return touched


def summarize(conn: psycopg.Connection) -> dict:
    """Counts a test can compare with the §10 facts."""
    curve = "(t.base_price * t.current_supply + t.price_step * t.current_supply ^ 2 / 2)"
    holdings = ("(select coalesce(sum(p.pv_amount), 0) from public.portfolio as p"
                " where p.ticker = t.ticker)")
    row = conn.execute(f"""
        select
            (select count(*) from public.users),
            (select count(*) from public.users where scale(usdp_balance) > 6),
            (select max(scale(usdp_balance)) from public.users),
            (select count(*) from public.portfolio),
            (select count(*) from public.portfolio where scale(pv_amount) > 8),
            (select max(scale(pv_amount)) from public.portfolio),
            (select count(*) from public.issuer_trading),
            (select count(*) from public.issuer_trading as t where t.current_supply > {holdings}),
            (select count(*) from public.issuer_trading as t where t.current_supply < {holdings}),
            (select count(*) from public.issuer_trading as t where t.total_usdp < {curve}),
            (select count(*) from public.issuer_trading as t where t.total_usdp > {curve}),
            (select count(*) from public.issuer_trading as t
             where t.current_price <> t.base_price + t.price_step * t.current_supply),
            (select count(*) from public.transactions),
            (select count(*) from public.transactions where queue_id is null),
            (select count(*) from public.transactions where scale(amount_usdp) > 6),
            (select count(*) from public.transactions where scale(pv_traded) > 8),
            (select count(*) from public.queue where status = 'pending'),
            (select count(*) from public.queue where status = 'failed'),
            (select count(*) from public.queue where status = 'cancelled'),
            (select count(*) from public.queue where status = 'processing'),
            (select count(*) from public.price_history),
            (select count(*) from public.issuer_details as d where not exists
                (select 1 from public.issuer_trading as t where t.ticker = d.ticker)),
            (select coalesce(sum(usdp_balance), 0) from public.users),
            (select coalesce(sum(total_usdp), 0) from public.issuer_trading),
            (select count(*) from supabase_functions.http_request_calls)
    """).fetchone()
    keys = ("users", "balances_over_6_decimals", "max_balance_scale", "holdings",
            "holdings_over_8_decimals", "max_holding_scale", "listed_issuers",
            "tickers_supply_above_holdings", "tickers_supply_below_holdings",
            "pools_below_curve", "pools_above_curve", "prices_inconsistent", "trades",
            "trades_without_queue_id", "trade_amounts_over_6_decimals",
            "trade_pv_over_8_decimals", "pending", "failed", "cancelled", "processing",
            "ticks", "details_without_trading", "sum_balances", "sum_pools", "webhook_calls")
    return dict(zip(keys, row, strict=True))
