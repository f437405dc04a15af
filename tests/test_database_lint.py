"""Supabase's database linter rules ("splinter"), written here as catalog queries and run
against the migrated database, so every later migration is checked too.

Each rule is a query returning one text row per finding, in a stable format
(`schema.object[...]`), and at least one negative control: a deliberately bad object,
created inside the rolled-back test transaction, that the rule must report, and report
alone. A finding fails the test unless ALLOWED names it with a reason.

Scope: schemas public and pauv (and auth where the rule is about auth), never objects
owned by an extension (pg_depend deptype 'e'). Rules about what the Data API exposes
look at the schemas `[api] schemas` of supabase/config.toml lists.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

import psycopg
import pytest

from conftest import ROOT

CONFIG = tomllib.loads((ROOT / "supabase" / "config.toml").read_text())
EXPOSED_SCHEMAS: list[str] = CONFIG["api"]["schemas"]
assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", s) for s in EXPOSED_SCHEMAS), EXPOSED_SCHEMAS
EXPOSED = "array[" + ", ".join(f"'{s}'" for s in EXPOSED_SCHEMAS) + "]::name[]"
OURS = "array['public', 'pauv']::name[]"


def not_extension_member(oid: str, catalog: str = "pg_class") -> str:
    """SQL: the object is not part of an extension."""
    return (
        "not exists (select from pg_catalog.pg_depend as ext"
        f" where ext.classid = '{catalog}'::regclass and ext.objid = {oid}"
        " and ext.deptype = 'e')"
    )


@dataclass(frozen=True)
class Control:
    """A deliberately bad object (`setup` SQL) and the one finding it must produce."""

    setup: str
    finding: str


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    description: str
    query: str
    controls: tuple[Control, ...]

    @property
    def id(self) -> str:
        return f"{self.code}_{self.name}"


RULES: tuple[Rule, ...] = (
    Rule(
        "0001", "unindexed_foreign_keys",
        "A foreign key whose columns are not the leading columns of a valid, non-partial "
        "index: deletes and updates of the referenced row scan the referencing table.",
        f"""
        select format('%s.%s.%s', n.nspname, t.relname, con.conname)
        from pg_catalog.pg_constraint as con
        join pg_catalog.pg_class as t on t.oid = con.conrelid
        join pg_catalog.pg_namespace as n on n.oid = t.relnamespace
        where con.contype = 'f'
          and n.nspname = any({OURS})
          and {not_extension_member('t.oid')}
          and not exists (
              select from pg_catalog.pg_index as i
              cross join lateral (
                  select (string_to_array(i.indkey::text, ' ')::smallint[])
                      [1:cardinality(con.conkey)] as leading
              ) as k
              where i.indrelid = con.conrelid and i.indisvalid and i.indpred is null
                and k.leading @> con.conkey and k.leading <@ con.conkey
          )
        order by 1
        """,
        (
            Control(
                """
                create table public.lint_fk_child (
                    id bigint primary key,
                    user_id uuid references public.users (user_id)
                );
                """,
                "public.lint_fk_child.lint_fk_child_user_id_fkey",
            ),
            # An index on the right columns but partial does not count.
            Control(
                """
                create table public.lint_fk_partial (
                    id bigint primary key,
                    ticker text references public.issuer_trading (ticker),
                    done boolean
                );
                create index on public.lint_fk_partial (ticker) where not done;
                """,
                "public.lint_fk_partial.lint_fk_partial_ticker_fkey",
            ),
        ),
    ),
    Rule(
        "0002", "auth_users_exposed",
        "A view or materialized view in an exposed schema that reads auth.users and that "
        "anon or authenticated may select: user e-mails and metadata leak through the API.",
        f"""
        select distinct format('%s.%s', n.nspname, v.relname)
        from pg_catalog.pg_class as v
        join pg_catalog.pg_namespace as n on n.oid = v.relnamespace
        join pg_catalog.pg_rewrite as r on r.ev_class = v.oid
        join pg_catalog.pg_depend as d
            on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
            and d.refclassid = 'pg_class'::regclass and d.refobjid = 'auth.users'::regclass
        where v.relkind in ('v', 'm')
          and n.nspname = any({EXPOSED})
          and {not_extension_member('v.oid')}
          and (has_table_privilege('anon', v.oid, 'select')
               or has_table_privilege('authenticated', v.oid, 'select'))
        order by 1
        """,
        (
            Control(
                """
                create view public.lint_user_emails as select u.id, u.email from auth.users as u;
                grant select on public.lint_user_emails to authenticated;
                """,
                "public.lint_user_emails",
            ),
        ),
    ),
    Rule(
        "0003", "auth_rls_initplan",
        "A policy calling auth.uid()/jwt()/role()/email() or current_setting() directly: "
        "it runs once per row. Wrapped as (select auth.uid()) it runs once per statement.",
        f"""
        select format('%s.%s.%s', p.schemaname, p.tablename, p.policyname)
        from pg_catalog.pg_policies as p
        where p.schemaname = any({OURS})
          and exists (
              select from (values (p.qual), (p.with_check)) as e (expr)
              where regexp_count(
                        e.expr, '(auth\\.(uid|jwt|role|email)|current_setting)\\(')
                    > regexp_count(
                        e.expr, 'SELECT \\(*(auth\\.(uid|jwt|role|email)|current_setting)\\(')
          )
        order by 1
        """,
        (
            Control(
                """
                create table public.lint_initplan (id bigint primary key, user_id uuid);
                alter table public.lint_initplan enable row level security;
                create policy lint_initplan_own on public.lint_initplan
                for select to authenticated using (user_id = auth.uid());
                """,
                "public.lint_initplan.lint_initplan_own",
            ),
            # One call wrapped, the other not: still per row.
            Control(
                """
                create table public.lint_initplan_mixed (id bigint primary key, user_id uuid);
                alter table public.lint_initplan_mixed enable row level security;
                create policy lint_initplan_mixed_own on public.lint_initplan_mixed
                for update to authenticated
                using (user_id = (select auth.uid()))
                with check (current_setting('request.jwt.claims', true) is not null);
                """,
                "public.lint_initplan_mixed.lint_initplan_mixed_own",
            ),
        ),
    ),
    Rule(
        "0004", "no_primary_key",
        "A table without a primary key: rows cannot be addressed reliably (and logical "
        "replication cannot update or delete them).",
        f"""
        select format('%s.%s', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and not c.relispartition
          and n.nspname = any({OURS})
          and {not_extension_member('c.oid')}
          and not exists (
              select from pg_catalog.pg_constraint as con
              where con.conrelid = c.oid and con.contype = 'p'
          )
        order by 1
        """,
        (Control("create table pauv.lint_no_pk (x integer);", "pauv.lint_no_pk"),),
    ),
    Rule(
        "0006", "multiple_permissive_policies",
        "Two or more permissive policies for the same role and action on a table: each is "
        "evaluated for every row (they are OR-ed), which is slow and easy to widen by mistake.",
        f"""
        with policy_role_action as (
            select pol.polrelid, pol.polname, rol.role_name, act.action
            from pg_catalog.pg_policy as pol
            cross join lateral (
                select r.rolname::text from pg_catalog.pg_roles as r
                where r.oid = any(pol.polroles)
                union
                select api.role_name from unnest(array['anon', 'authenticated']) as api (role_name)
                where 0::oid = any(pol.polroles)
            ) as rol (role_name)
            cross join lateral unnest(
                case pol.polcmd
                    when 'r' then array['select']
                    when 'a' then array['insert']
                    when 'w' then array['update']
                    when 'd' then array['delete']
                    else array['select', 'insert', 'update', 'delete']
                end
            ) as act (action)
            where pol.polpermissive
        )
        select format(
            '%s.%s: %s %s (%s)', n.nspname, c.relname, pra.role_name, pra.action,
            string_agg(pra.polname, ', ' order by pra.polname)
        )
        from policy_role_action as pra
        join pg_catalog.pg_class as c on c.oid = pra.polrelid
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = any({OURS})
          and pra.role_name in ('anon', 'authenticated')
          and {not_extension_member('c.oid')}
        group by n.nspname, c.relname, pra.role_name, pra.action
        having count(*) > 1
        order by 1
        """,
        (
            Control(
                """
                create table public.lint_two_policies (id bigint primary key, user_id uuid);
                alter table public.lint_two_policies enable row level security;
                create policy lint_a on public.lint_two_policies
                for select to authenticated using (user_id = (select auth.uid()));
                create policy lint_b on public.lint_two_policies
                for select to authenticated using (id < 10);
                """,
                "public.lint_two_policies: authenticated select (lint_a, lint_b)",
            ),
        ),
    ),
    Rule(
        "0007", "policy_exists_rls_disabled",
        "A table with policies but RLS disabled: the policies look like protection and do "
        "nothing.",
        f"""
        select format('%s.%s', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and not c.relrowsecurity
          and n.nspname = any({OURS})
          and {not_extension_member('c.oid')}
          and exists (select from pg_catalog.pg_policy as pol where pol.polrelid = c.oid)
        order by 1
        """,
        (
            Control(
                """
                create table pauv.lint_policy_no_rls (id bigint primary key);
                create policy lint_everyone on pauv.lint_policy_no_rls
                for select to authenticated using (true);
                """,
                "pauv.lint_policy_no_rls",
            ),
        ),
    ),
    Rule(
        "0008", "rls_enabled_no_policy",
        "A table with RLS enabled and no policy: every API role sees no rows, whatever it "
        "was granted; usually a forgotten policy.",
        f"""
        select format('%s.%s', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and c.relrowsecurity
          and n.nspname = any({OURS})
          and {not_extension_member('c.oid')}
          and not exists (select from pg_catalog.pg_policy as pol where pol.polrelid = c.oid)
        order by 1
        """,
        (
            Control(
                """
                create table public.lint_rls_no_policy (id bigint primary key);
                alter table public.lint_rls_no_policy enable row level security;
                """,
                "public.lint_rls_no_policy",
            ),
        ),
    ),
    Rule(
        "0009", "duplicate_index",
        "Two indexes with the same definition on a table: twice the write cost, no gain.",
        f"""
        select format(
            '%s.%s: %s', n.nspname, t.relname,
            string_agg(ic.relname, ', ' order by ic.relname)
        )
        from pg_catalog.pg_index as i
        join pg_catalog.pg_class as ic on ic.oid = i.indexrelid
        join pg_catalog.pg_class as t on t.oid = i.indrelid
        join pg_catalog.pg_namespace as n on n.oid = t.relnamespace
        where n.nspname = any({OURS})
          and {not_extension_member('t.oid')}
        group by
            n.nspname, t.relname, ic.relam, i.indkey::text, i.indclass::text,
            i.indcollation::text, i.indoption::text,
            coalesce(pg_get_expr(i.indexprs, i.indrelid), ''),
            coalesce(pg_get_expr(i.indpred, i.indrelid), '')
        having count(*) > 1
        order by 1
        """,
        (
            Control(
                "create index lint_queue_ticker_again on public.queue (ticker);",
                "public.queue: lint_queue_ticker_again, queue_ticker_idx",
            ),
        ),
    ),
    Rule(
        "0010", "security_definer_view",
        "A view in an exposed schema without security_invoker: it reads its tables with the "
        "owner's rights, bypassing the caller's RLS.",
        f"""
        select format('%s.%s', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where c.relkind = 'v'
          and n.nspname = any({EXPOSED})
          and {not_extension_member('c.oid')}
          and not exists (
              select from unnest(c.reloptions) as o (opt)
              where lower(o.opt) in (
                  'security_invoker=true', 'security_invoker=on', 'security_invoker=1',
                  'security_invoker=yes'
              )
          )
        order by 1
        """,
        (
            Control(
                "create view public.lint_definer_view as select ticker from public.portfolio;",
                "public.lint_definer_view",
            ),
        ),
    ),
    Rule(
        "0011", "function_search_path_mutable",
        "A function that does not pin search_path: what its unqualified names resolve to "
        "depends on the caller's search_path.",
        f"""
        select format('%s.%s(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
        from pg_catalog.pg_proc as p
        join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
        where n.nspname = any({OURS})
          and p.prokind in ('f', 'p')
          and {not_extension_member('p.oid', 'pg_proc')}
          and not exists (
              select from unnest(p.proconfig) as cfg (setting)
              where starts_with(cfg.setting, 'search_path=')
          )
        order by 1
        """,
        (
            Control(
                "create function pauv.lint_mutable(p_x integer) returns integer"
                " language sql as 'select p_x';",
                "pauv.lint_mutable(p_x integer)",
            ),
        ),
    ),
    Rule(
        "0013", "rls_disabled_in_public",
        "A table in an exposed schema with RLS disabled: whatever the API roles are granted, "
        "they get on every row.",
        f"""
        select format('%s.%s', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and not c.relrowsecurity
          and n.nspname = any({EXPOSED})
          and {not_extension_member('c.oid')}
        order by 1
        """,
        (
            Control(
                "create table public.lint_no_rls (id bigint primary key);",
                "public.lint_no_rls",
            ),
        ),
    ),
    Rule(
        "0014", "extension_in_public",
        "An extension installed in public: its functions and types appear in the API schema.",
        f"""
        select e.extname::text
        from pg_catalog.pg_extension as e
        where e.extnamespace = 'public'::regnamespace
          and {not_extension_member('e.oid', 'pg_extension')}
        order by 1
        """,
        (Control("create extension citext schema public;", "citext"),),
    ),
    Rule(
        "0015", "rls_references_user_metadata",
        "A policy reading user_metadata (raw_user_meta_data): users edit their own metadata, "
        "so it must never decide what they may see or do.",
        f"""
        select format('%s.%s.%s', p.schemaname, p.tablename, p.policyname)
        from pg_catalog.pg_policies as p
        where p.schemaname = any({OURS} || 'auth'::name)
          and (coalesce(p.qual, '') ~* 'user_meta_?data'
               or coalesce(p.with_check, '') ~* 'user_meta_?data')
        order by 1
        """,
        (
            Control(
                """
                create table public.lint_metadata (id bigint primary key);
                alter table public.lint_metadata enable row level security;
                create policy lint_admins on public.lint_metadata
                for select to authenticated
                using (((select auth.jwt()) -> 'user_metadata' ->> 'role') = 'admin');
                """,
                "public.lint_metadata.lint_admins",
            ),
        ),
    ),
    Rule(
        "0016", "materialized_view_in_api",
        "A materialized view in an exposed schema that anon or authenticated may select: "
        "materialized views have no RLS.",
        f"""
        select format('%s.%s', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where c.relkind = 'm'
          and n.nspname = any({EXPOSED})
          and {not_extension_member('c.oid')}
          and (has_table_privilege('anon', c.oid, 'select')
               or has_table_privilege('authenticated', c.oid, 'select'))
        order by 1
        """,
        (
            Control(
                """
                create materialized view public.lint_holdings as
                select ticker, sum(pv_amount) as held from public.portfolio group by ticker;
                grant select on public.lint_holdings to anon;
                """,
                "public.lint_holdings",
            ),
        ),
    ),
    Rule(
        "0023", "sensitive_columns_exposed",
        "A column named like a credential or a payment/identity number (password, secret, "
        "token, api_key, ssn, credit_card, ...) that anon or authenticated may select.",
        f"""
        select format('%s.%s.%s', n.nspname, c.relname, a.attname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        join pg_catalog.pg_attribute as a
            on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where c.relkind in ('r', 'p', 'v', 'm', 'f')
          and n.nspname = any({EXPOSED})
          and {not_extension_member('c.oid')}
          and lower(a.attname) ~ (
              '(^|_)(password|passwd|pwd|passphrase|secret|secret_key|token|access_token'
              '|refresh_token|api_?key|private_key|access_key|salt|otp|mfa_secret|ssn'
              '|social_security(_number)?|tax_id|passport(_number)?|credit_card|card_number'
              '|cc_number|cvv|cvc|iban|account_number|routing_number|pin)(_|$)'
          )
          and (has_column_privilege('anon', c.oid, a.attnum, 'select')
               or has_column_privilege('authenticated', c.oid, a.attnum, 'select'))
        order by 1
        """,
        (
            Control(
                """
                create table public.lint_sensitive (
                    id bigint primary key, label text, api_key text
                );
                alter table public.lint_sensitive enable row level security;
                create policy lint_sensitive_read on public.lint_sensitive
                for select to authenticated using (true);
                grant select on public.lint_sensitive to authenticated;
                """,
                "public.lint_sensitive.api_key",
            ),
            # A column grant is enough to expose it.
            Control(
                """
                create table public.lint_sensitive_column (id bigint primary key, password text);
                grant select (password) on public.lint_sensitive_column to anon;
                """,
                "public.lint_sensitive_column.password",
            ),
        ),
    ),
    Rule(
        "0024", "rls_policy_always_true",
        "A permissive INSERT/UPDATE/DELETE/ALL policy for anon or authenticated whose USING "
        "or WITH CHECK is just true: anyone with the grant may write any row.",
        f"""
        select format('%s.%s.%s', n.nspname, c.relname, pol.polname)
        from pg_catalog.pg_policy as pol
        join pg_catalog.pg_class as c on c.oid = pol.polrelid
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = any({OURS})
          and {not_extension_member('c.oid')}
          and pol.polpermissive
          and pol.polcmd in ('a', 'w', 'd', '*')
          and (0::oid = any(pol.polroles)
               or pol.polroles && array(
                   select r.oid from pg_catalog.pg_roles as r
                   where r.rolname in ('anon', 'authenticated')
               ))
          and (lower(coalesce(pg_get_expr(pol.polqual, pol.polrelid), '')) in ('true', '(true)')
               or lower(coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), ''))
               in ('true', '(true)'))
        order by 1
        """,
        (
            Control(
                """
                create table public.lint_open_insert (id bigint primary key, note text);
                alter table public.lint_open_insert enable row level security;
                create policy lint_anyone_inserts on public.lint_open_insert
                for insert to anon, authenticated with check (true);
                """,
                "public.lint_open_insert.lint_anyone_inserts",
            ),
            Control(
                """
                create table public.lint_open_all (id bigint primary key, note text);
                alter table public.lint_open_all enable row level security;
                create policy lint_everything on public.lint_open_all using (true);
                """,
                "public.lint_open_all.lint_everything",
            ),
        ),
    ),
    Rule(
        "0028", "anon_security_definer_function_executable",
        "A SECURITY DEFINER function in an exposed schema that anon may execute: anyone can "
        "call it through /rest/v1/rpc with its owner's rights.",
        f"""
        select format('%s.%s(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
        from pg_catalog.pg_proc as p
        join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
        where p.prosecdef
          and n.nspname = any({EXPOSED})
          and {not_extension_member('p.oid', 'pg_proc')}
          and has_function_privilege('anon', p.oid, 'execute')
        order by 1
        """,
        (
            Control(
                """
                create function public.lint_definer_for_anon() returns integer
                language sql security definer set search_path = '' as 'select 1';
                grant execute on function public.lint_definer_for_anon() to anon;
                """,
                "public.lint_definer_for_anon()",
            ),
        ),
    ),
    Rule(
        "0029", "authenticated_security_definer_function_executable",
        "A SECURITY DEFINER function in an exposed schema that authenticated may execute: "
        "any signed-in user can call it through /rest/v1/rpc with its owner's rights.",
        f"""
        select format('%s.%s(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
        from pg_catalog.pg_proc as p
        join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
        where p.prosecdef
          and n.nspname = any({EXPOSED})
          and {not_extension_member('p.oid', 'pg_proc')}
          and has_function_privilege('authenticated', p.oid, 'execute')
        order by 1
        """,
        (
            Control(
                """
                create function public.lint_definer_for_users(p_id bigint) returns bigint
                language sql security definer set search_path = '' as 'select p_id';
                grant execute on function public.lint_definer_for_users(bigint) to authenticated;
                """,
                "public.lint_definer_for_users(p_id bigint)",
            ),
        ),
    ),
)

RULES_BY_ID = {rule.id: rule for rule in RULES}

# Findings accepted on purpose: (rule id, finding) -> why. Keep each reason specific; a
# stale entry (no longer found) fails test_allowed_findings_still_exist.
# A procedure that commits between batches cannot carry a SET clause (PostgreSQL refuses
# transaction control in it), so these two pin nothing; every name in them is
# schema-qualified and they are SECURITY INVOKER, executable by the service only.
_COMMITTING_PROCEDURE = (
    "commits between batches, so it cannot have SET search_path; all its names are "
    "schema-qualified and it is SECURITY INVOKER, for the service and pg_cron only"
)
ALLOWED: dict[tuple[str, str], str] = {
    (
        "0011_function_search_path_mutable",
        "pauv.run_cleanup_old_queue_entries(IN p_retention interval, IN p_batch_size integer,"
        " IN p_max_batches integer)",
    ): _COMMITTING_PROCEDURE,
    (
        "0011_function_search_path_mutable",
        "pauv.sweep_pending_orders(IN p_max_seconds numeric)",
    ): _COMMITTING_PROCEDURE,
}


def findings(conn: psycopg.Connection, rule: Rule) -> list[str]:
    # As splinter does: with an empty search_path, expressions and names deparse fully
    # qualified (auth.uid(), public.t), whatever the session's path was.
    conn.execute("set local search_path = ''")
    return [row[0] for row in conn.execute(rule.query).fetchall()]


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_rule_finds_nothing(db: psycopg.Connection, rule: Rule) -> None:
    found = [f for f in findings(db, rule) if (rule.id, f) not in ALLOWED]
    assert found == [], f"{rule.id}: {rule.description}"


CONTROLS = [(rule, i) for rule in RULES for i in range(len(rule.controls))]


@pytest.mark.parametrize(
    ("rule", "index"), CONTROLS, ids=[f"{r.id}-{i}" for r, i in CONTROLS]
)
def test_rule_reports_a_deliberate_violation(
    db: psycopg.Connection, rule: Rule, index: int
) -> None:
    control = rule.controls[index]
    before = set(findings(db, rule))
    db.execute(control.setup)
    after = set(findings(db, rule))
    assert after - before == {control.finding}
    assert before <= after


def test_every_rule_has_a_negative_control() -> None:
    assert all(rule.controls for rule in RULES)
    assert len(RULES_BY_ID) == len(RULES)


def test_allowed_findings_still_exist(db: psycopg.Connection) -> None:
    for (rule_id, finding), reason in ALLOWED.items():
        assert reason.strip(), f"{rule_id} {finding}: give a reason"
        assert finding in findings(db, RULES_BY_ID[rule_id]), (
            f"{rule_id} no longer reports {finding}: remove it from ALLOWED"
        )
