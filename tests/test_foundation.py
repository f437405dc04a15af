"""The foundation: migrations pushed by the CLI, sign-up, deposits and withdrawals,
the money domains, and plpgsql_check over every PL/pgSQL function of ours."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest

from conftest import MIGRATIONS, Cluster, as_role, drain, new_issuer, new_user


def test_every_migration_is_recorded_by_the_cli(db: psycopg.Connection) -> None:
    rows = db.execute(
        "select version, name from supabase_migrations.schema_migrations order by version"
    ).fetchall()
    files = sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    assert [f"{v}_{n}.sql" for v, n in rows] == files


def test_a_second_push_applies_nothing(cluster: Cluster) -> None:
    proc = cluster.push_migrations()
    assert proc.returncode == 0, proc.stderr
    assert "Remote database is up to date" in proc.stdout + proc.stderr


def test_signup_creates_a_users_row_with_zero_balance(db: psycopg.Connection) -> None:
    user_id = new_user(db, username="ava")
    row = db.execute(
        "select username, usdp_balance from public.users where user_id = %s", (user_id,)
    ).fetchone()
    assert row == ("ava", Decimal("0"))


def test_deposit_and_withdraw_move_the_balance_and_the_ledger(db: psycopg.Connection) -> None:
    user_id = new_user(db)
    assert db.execute("select public.deposit_usdp(%s, 100.25)", (user_id,)).fetchone()[0] == Decimal(
        "100.25")
    assert db.execute("select public.withdraw_usdp(%s, 0.000001)", (user_id,)).fetchone()[0] == Decimal(
        "100.249999")
    ledger = db.execute(
        "select amount from pauv.usdp_movements where user_id = %s order by id", (user_id,)
    ).fetchall()
    assert ledger == [(Decimal("100.25"),), (Decimal("-0.000001"),)]


@pytest.mark.parametrize(
    ("function", "amount", "sqlstate", "message"),
    [
        ("deposit_usdp", "NaN", "22023", "finite"),
        ("deposit_usdp", "Infinity", "22023", "finite"),
        ("deposit_usdp", "-Infinity", "22023", "finite"),
        ("deposit_usdp", "0", "22023", "greater than 0"),
        ("deposit_usdp", "-5", "22023", "greater than 0"),
        ("deposit_usdp", "1000000000.000001", "22023", "at most 1000000000"),
        ("deposit_usdp", "1.0000001", "22023", "at most 6 decimals"),
        ("withdraw_usdp", "50.000001", "PA001", "insufficient balance"),
    ],
)
def test_bad_balance_moves_are_rejected_and_move_nothing(
    db: psycopg.Connection, function: str, amount: str, sqlstate: str, message: str
) -> None:
    user_id = new_user(db, balance=50)
    db.execute("savepoint before")
    with pytest.raises(psycopg.Error) as err:
        db.execute(f"select public.{function}(%s, %s::numeric)", (user_id, amount))
    assert err.value.sqlstate == sqlstate
    assert message in str(err.value)
    db.execute("rollback to savepoint before")
    assert db.execute(
        "select usdp_balance from public.users where user_id = %s", (user_id,)
    ).fetchone()[0] == Decimal("50")
    assert db.execute(
        "select count(*) from pauv.usdp_movements where user_id = %s", (user_id,)
    ).fetchone()[0] == 1


def test_deposit_to_an_unknown_user_is_rejected(db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.NoDataFound, match="unknown user"):
        db.execute("select public.deposit_usdp(%s, 10)", (uuid.uuid4(),))


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_cannot_move_balances(db: psycopg.Connection, role: str) -> None:
    user_id = new_user(db)
    with as_role(db, role), pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("select public.deposit_usdp(%s, 10)", (user_id,))


def test_service_role_can_deposit(db: psycopg.Connection) -> None:
    user_id = new_user(db)
    with as_role(db, "service_role"):
        assert db.execute("select public.deposit_usdp(%s, 10)", (user_id,)).fetchone()[0] == 10


@pytest.mark.parametrize(
    ("value", "constraint"),
    [
        ("NaN", "usdp_amount_is_finite"),
        ("Infinity", "usdp_amount_is_finite"),
        ("-1", "usdp_amount_is_non_negative"),
        ("1.1234567", "usdp_amount_has_at_most_6_decimals"),
    ],
)
def test_usdp_columns_reject_bad_values_instead_of_rounding(
    db: psycopg.Connection, value: str, constraint: str
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match=constraint):
        db.execute("select %s::public.usdp_amount", (value,))


def test_pv_columns_keep_8_decimals_and_reject_9(db: psycopg.Connection) -> None:
    assert db.execute("select '0.00000001'::public.pv_quantity").fetchone()[0] == Decimal(
        "0.00000001")
    with pytest.raises(psycopg.errors.CheckViolation, match="pv_quantity_has_at_most_8_decimals"):
        db.execute("select '0.000000001'::public.pv_quantity")


def test_current_price_follows_the_curve_and_the_pool_must_cover_supply(
    db: psycopg.Connection,
) -> None:
    db.execute("insert into public.issuer_details (ticker, name) values ('TST', 'Test')")
    db.execute("insert into public.issuer_trading (ticker) values ('TST')")
    row = db.execute(
        "select current_supply, base_price, price_step, current_price, total_usdp"
        " from public.issuer_trading where ticker = 'TST'"
    ).fetchone()
    assert row == (0, Decimal("1.00"), Decimal("0.01"), Decimal("1.00"), 0)
    # 10 tokens cost 1*10 + 0.01*100/2 = 10.5 USDP: a pool of 10.5 is exactly solvent.
    db.execute("update public.issuer_trading set current_supply = 10, total_usdp = 10.5"
               " where ticker = 'TST'")
    assert db.execute(
        "select current_price from public.issuer_trading where ticker = 'TST'"
    ).fetchone()[0] == Decimal("1.10")
    with pytest.raises(psycopg.errors.CheckViolation, match="issuer_trading_pool_covers_supply"):
        db.execute("update public.issuer_trading set total_usdp = 10.499999 where ticker = 'TST'")


def test_plpgsql_check_finds_no_error_in_our_functions(db: psycopg.Connection) -> None:
    findings = db.execute(
        """
        select p.oid::regprocedure::text, r.lineno, r.message
        from pg_proc as p
        join pg_language as l on l.oid = p.prolang and l.lanname = 'plpgsql'
        left join lateral (
            select t.tgrelid, t.tgnewtable, t.tgoldtable
            from pg_trigger as t where t.tgfoid = p.oid limit 1
        ) as trg on true
        cross join lateral extensions.plpgsql_check_function_tb(
            p.oid, coalesce(trg.tgrelid, 0),
            newtable => trg.tgnewtable, oldtable => trg.tgoldtable
        ) as r
        where p.pronamespace in ('public'::regnamespace, 'pauv'::regnamespace)
          and r.level = 'error'
          and (p.prorettype <> 'trigger'::regtype or trg.tgrelid is not null)
        """
    ).fetchall()
    checked = db.execute(
        "select count(*) from pg_proc as p join pg_language as l on l.oid = p.prolang"
        " where l.lanname = 'plpgsql'"
        " and p.pronamespace in ('public'::regnamespace, 'pauv'::regnamespace)"
    ).fetchone()[0]
    assert checked >= 3
    assert findings == []


# The row of each market table the test below follows, and a harmless update of it that
# leaves updated_at alone (the app's kind of write).
UPDATED_AT_ROWS = {
    "issuer_details": ("ticker = 'UPD'", "name = name"),
    "issuer_trading": ("ticker = 'UPD'", "price_step = price_step"),
    "users": ("user_id = %(user)s", "username = username"),
    "portfolio": ("user_id = %(user)s", "avg_cost_basis = avg_cost_basis"),
    "queue": ("id = (select max(id) from public.queue)", "error_message = error_message"),
}


def updated_at(conn: psycopg.Connection, table: str, user_id: uuid.UUID) -> object:
    key, _ = UPDATED_AT_ROWS[table]
    return conn.execute(f"select updated_at from public.{table} where {key}",
                        {"user": user_id}).fetchone()[0]


def test_every_update_leaves_updated_at_at_its_transactions_start(market: Cluster) -> None:
    """The updated_at triggers skip their call when the writer set updated_at to now()
    itself, as the order processor does; every other update still ends with updated_at =
    now(), including one that sets an older time."""
    with market.connect() as conn:
        new_issuer(conn, "UPD")
        user_id = new_user(conn, 100)
        buy = ("insert into public.queue (user_id, ticker, order_type, amount_usdp)"
               " values (%s, 'UPD', 'buy', 10)")
        conn.execute(buy, (user_id,))
        conn.commit()
        # The processor's rows: the user, the new holding, the order and the issuer.
        assert drain(conn)["successful"] == 1
        first_call = conn.execute("select now()").fetchone()[0]
        conn.commit()
        for table in ("issuer_trading", "users", "portfolio", "queue"):
            assert updated_at(conn, table, user_id) == first_call, table
        # A second buy updates the holding in place (the first inserted it).
        conn.execute(buy, (user_id,))
        conn.commit()
        assert drain(conn)["successful"] == 1
        second_call = conn.execute("select now()").fetchone()[0]
        conn.commit()
        for table in ("issuer_trading", "users", "portfolio", "queue"):
            assert updated_at(conn, table, user_id) == second_call, table
        for table, (key, same) in UPDATED_AT_ROWS.items():
            for change in (same, "updated_at = '2000-01-01'"):
                before = updated_at(conn, table, user_id)
                conn.execute(f"update public.{table} set {change} where {key}", {"user": user_id})
                now = conn.execute("select now()").fetchone()[0]
                assert before < now, (table, change)
                assert updated_at(conn, table, user_id) == now, (table, change)
                conn.rollback()
