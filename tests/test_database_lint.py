"""Supabase's own database checks, run with the pinned CLI against the migrated test
database, so every later migration is checked too:

- `supabase db advisors --type all --level info`: Supabase's linter ("splinter"), the
  rules of the dashboard's Security and Performance Advisors;
- `supabase db lint --level warning`: plpgsql_check over every function.

Any finding fails unless ALLOWED names it (tool, rule, object) with a reason, and an
entry that no longer matches a finding fails too (it is stale: delete it).

Rules of our own are kept only where the pinned CLI (2.117.0) has none; its embedded
splinter stops at 0024. The hosted dashboard runs a newer splinter that adds:
- 0026/0027 pg_graphql_{anon,authenticated}_table_exposed: hosted projects have pg_graphql,
  so every table `anon` / `authenticated` can SELECT is visible in /graphql/v1
  introspection. Whether that is intended is decided per table in docs/security.md (the
  table between the `graphql-exposure` markers), which this file reads as allowed findings.
  The queries assume pg_graphql is installed, as on every hosted project: no stand-in is
  needed because the rule depends on nothing else pg_graphql creates.
- 0028/0029 {anon,authenticated}_security_definer_function_executable: a SECURITY DEFINER
  function the API roles may execute runs with its owner's rights.
Each of our rules has a negative control: a bad object, created in the rolled-back test
transaction, that it must report, and report alone.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

import psycopg
import pytest

from conftest import ROOT, Cluster

CLI = ROOT / "node_modules" / ".bin" / "supabase"

# splinter's list of platform schemas (0026-0029 exclude them; so do we).
SYSTEM_SCHEMAS = (
    "_timescaledb_cache", "_timescaledb_catalog", "_timescaledb_config",
    "_timescaledb_internal", "auth", "cron", "extensions", "graphql", "graphql_public",
    "information_schema", "net", "pgmq", "pgroonga", "pgsodium", "pgsodium_masks", "pgtle",
    "pgbouncer", "pg_catalog", "realtime", "repack", "storage", "supabase_functions",
    "supabase_migrations", "tiger", "topology", "vault",
)
NOT_SYSTEM = "n.nspname <> all(array[" + ", ".join(f"'{s}'" for s in SYSTEM_SCHEMAS) + "])"
NOT_EXTENSION_MEMBER = (
    "not exists (select from pg_catalog.pg_depend as d where d.objid = {oid}"
    " and d.deptype = 'e')"
)


@dataclass(frozen=True)
class Finding:
    tool: str  # advisors | lint | ours
    rule: str
    object: str
    detail: str = ""


@dataclass(frozen=True)
class Allowed:
    tool: str
    rule: str
    object: str  # "*" only for rules that measure traffic, not the schema
    why: str

    def matches(self, f: Finding) -> bool:
        return (self.tool, self.rule) == (f.tool, f.rule) and self.object in ("*", f.object)


_COMMITTING_PROCEDURE = (
    "a procedure that commits between batches cannot have any SET clause (PostgreSQL "
    "raises 2D000 on its COMMIT: test_a_committing_procedure_cannot_pin_its_search_path) and "
    "the rule accepts nothing but proconfig search_path=...; pg_cron has no other way to run "
    "committed batches in one job. It is SECURITY INVOKER, every name in it is "
    "schema-qualified, and only service_role and pg_cron (postgres) may call it"
)
_PAUV_NOT_AN_API_SCHEMA = (
    "pauv is not an API schema ([api] schemas of supabase/config.toml: public, "
    "graphql_public), so neither /rest/v1/rpc nor /graphql/v1 can call it; "
)

ALLOWED: tuple[Allowed, ...] = (
    Allowed("advisors", "function_search_path_mutable", "pauv.run_cleanup_old_queue_entries",
            _COMMITTING_PROCEDURE),
    Allowed("advisors", "function_search_path_mutable", "pauv.sweep_pending_orders",
            _COMMITTING_PROCEDURE),
    Allowed("advisors", "unused_index", "*",
            "reads pg_stat_user_indexes.idx_scan: the test database serves no real traffic "
            "(and which tests ran first varies), so any index may count as unused; index "
            "usage is judged on the hosted project's own statistics"),
    Allowed("ours", "anon_security_definer_function_executable",
            "pauv.compute_candles(p_ticker text, p_stride interval, p_from timestamp with time"
            " zone, p_to timestamp with time zone)",
            _PAUV_NOT_AN_API_SCHEMA + "public.get_ohlc_data (SECURITY INVOKER, for everyone) "
            "calls it to sum public.transactions, which the API roles may only read row by "
            "row for their own trades; it returns per-bucket aggregates only"),
    Allowed("ours", "authenticated_security_definer_function_executable",
            "pauv.compute_candles(p_ticker text, p_stride interval, p_from timestamp with time"
            " zone, p_to timestamp with time zone)",
            _PAUV_NOT_AN_API_SCHEMA + "see the anon entry: the chart data of get_ohlc_data"),
    Allowed("ours", "authenticated_security_definer_function_executable",
            "pauv.place_order(p_ticker text, p_order_type text, p_amount numeric,"
            " p_client_order_id text, p_min_receive numeric)",
            _PAUV_NOT_AN_API_SCHEMA + "it is what public.place_order (SECURITY INVOKER) calls: "
            "it places an order for auth.uid() only, and checks every limit itself"),
    Allowed("ours", "authenticated_security_definer_function_executable",
            "pauv.close_position(p_ticker text, p_client_order_id text, p_min_receive numeric)",
            _PAUV_NOT_AN_API_SCHEMA + "it is what public.close_position (SECURITY INVOKER) "
            "calls: it sells only auth.uid()'s own holding, and checks every limit itself"),
    Allowed("ours", "authenticated_security_definer_function_executable",
            "pauv.cancel_order(p_order_id bigint)",
            _PAUV_NOT_AN_API_SCHEMA + "it is what public.cancel_order (SECURITY INVOKER) "
            "calls: it cancels only the caller's own pending order"),
)

# --- the CLI ------------------------------------------------------------------------------


def run_cli(*args: str) -> list[dict]:
    """Run the pinned CLI with JSON output. It prints nothing on stdout when it finds
    nothing ("No issues found" goes to stderr); any failure to check fails the test."""
    out = subprocess.run([str(CLI), *args, "-o", "json"], cwd=ROOT, capture_output=True,
                         text=True, check=False, timeout=120)
    assert out.returncode == 0, f"supabase {' '.join(args[:2])} failed:\n{out.stderr}"
    return json.loads(out.stdout) if out.stdout.strip() else []


def advisors(url: str) -> list[Finding]:
    found = []
    for lint in run_cli("db", "advisors", "--db-url", url, "--type", "all", "--level", "info"):
        meta = lint.get("metadata") or {}
        obj = f"{meta['schema']}.{meta['name']}" if "schema" in meta else lint["cache_key"]
        found.append(Finding("advisors", lint["name"], obj, f"{lint['level']}: {lint['detail']}"))
    return found


def plpgsql_check(url: str) -> list[Finding]:
    return [
        Finding("lint", f"plpgsql_check {issue['level']}", fn["function"],
                f"line {issue['statement']['lineNumber']}: {issue['message']}"
                f" ({issue.get('detail', '')}; {issue.get('context', '')})")
        for fn in run_cli("db", "lint", "--db-url", url, "--level", "warning")
        for issue in fn["issues"]
    ]


@pytest.fixture(scope="module")
def cli_findings(cluster: Cluster) -> list[Finding]:
    # As `postgres`, the role the CLI uses on a hosted project.
    url = cluster.url("postgres")
    return advisors(url) + plpgsql_check(url)


def not_allowed(found: list[Finding]) -> list[Finding]:
    return [f for f in found if not any(a.matches(f) for a in allowed())]


# --- our rules (the CLI has none for these) -----------------------------------------------


@dataclass(frozen=True)
class Control:
    """A deliberately bad object (`setup` SQL) and the one finding it must produce."""

    setup: str
    finding: str


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    query: str
    controls: tuple[Control, ...]


def _table_exposed(role: str) -> str:
    return f"""
        select format('%s.%s', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'v', 'm')
          and pg_catalog.has_table_privilege('{role}', c.oid, 'select')
          and {NOT_SYSTEM}
        order by 1
        """


def _definer_executable(role: str) -> str:
    return f"""
        select format('%s.%s(%s)', n.nspname, p.proname,
                      pg_catalog.pg_get_function_identity_arguments(p.oid))
        from pg_catalog.pg_proc as p
        join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
        where p.prosecdef
          and pg_catalog.has_function_privilege('{role}', p.oid, 'execute')
          and {NOT_SYSTEM}
          and {NOT_EXTENSION_MEMBER.format(oid='p.oid')}
        order by 1
        """


RULES: tuple[Rule, ...] = (
    Rule(
        "pg_graphql_anon_table_exposed",
        "splinter 0026: with pg_graphql (on every hosted project) a table, view or "
        "materialized view anon can SELECT is visible to anyone in /graphql/v1 introspection.",
        _table_exposed("anon"),
        (Control("create table public.lint_anon_sees (id bigint primary key);"
                 " grant select on public.lint_anon_sees to anon;", "public.lint_anon_sees"),),
    ),
    Rule(
        "pg_graphql_authenticated_table_exposed",
        "splinter 0027: the same for any signed-in user.",
        _table_exposed("authenticated"),
        (Control("create view public.lint_users_see as select 1 as one;"
                 " grant select on public.lint_users_see to authenticated;",
                 "public.lint_users_see"),),
    ),
    Rule(
        "anon_security_definer_function_executable",
        "splinter 0028: a SECURITY DEFINER function anon may execute runs with its owner's "
        "rights for anyone.",
        _definer_executable("anon"),
        (Control("create function public.lint_definer_for_anon() returns integer"
                 " language sql security definer set search_path = '' as 'select 1';"
                 " grant execute on function public.lint_definer_for_anon() to anon;",
                 "public.lint_definer_for_anon()"),),
    ),
    Rule(
        "authenticated_security_definer_function_executable",
        "splinter 0029: a SECURITY DEFINER function authenticated may execute runs with its "
        "owner's rights for any signed-in user.",
        _definer_executable("authenticated"),
        (Control("create function pauv.lint_definer_for_users(p_id bigint) returns bigint"
                 " language sql security definer set search_path = '' as 'select p_id';"
                 " grant execute on function pauv.lint_definer_for_users(bigint)"
                 " to authenticated;",
                 "pauv.lint_definer_for_users(p_id bigint)"),),
    ),
)


def our_findings(conn: psycopg.Connection, rule: Rule) -> list[Finding]:
    # As splinter does: with an empty search_path names deparse fully qualified.
    conn.execute("set local search_path = ''")
    return [Finding("ours", rule.name, row[0]) for row in conn.execute(rule.query).fetchall()]


# --- the GraphQL exposure decided per table in docs/security.md ---------------------------

SECURITY_MD = ROOT / "docs" / "security.md"


def graphql_decisions() -> tuple[Allowed, ...]:
    """Rows `| \\`schema.table\\` | roles | why |` between the graphql-exposure markers."""
    text = SECURITY_MD.read_text()
    block = re.search(r"<!-- graphql-exposure: begin -->(.*?)<!-- graphql-exposure: end -->",
                      text, re.S)
    assert block, "docs/security.md lost its graphql-exposure table"
    decisions = []
    for line in block.group(1).splitlines():
        row = re.fullmatch(r"\|\s*`([a-z_]+\.[a-z_]+)`\s*\|([^|]*)\|([^|]+)\|\s*", line)
        if not row:
            continue
        table, roles, why = row.group(1), row.group(2), row.group(3).strip()
        for role in re.findall(r"anon|authenticated", roles):
            decisions.append(Allowed("ours", f"pg_graphql_{role}_table_exposed", table, why))
    assert decisions, "the graphql-exposure table of docs/security.md has no rows"
    return tuple(decisions)


def allowed() -> tuple[Allowed, ...]:
    return ALLOWED + graphql_decisions()


# --- tests --------------------------------------------------------------------------------


def test_supabase_advisors_report_nothing_unexpected(cli_findings: list[Finding]) -> None:
    found = [f for f in cli_findings if f.tool == "advisors"]
    assert not_allowed(found) == []


def test_plpgsql_check_reports_nothing_unexpected(cli_findings: list[Finding]) -> None:
    found = [f for f in cli_findings if f.tool == "lint"]
    assert not_allowed(found) == []


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_our_rule_reports_nothing_unexpected(db: psycopg.Connection, rule: Rule) -> None:
    assert not_allowed(our_findings(db, rule)) == [], rule.description


def test_no_allowed_entry_is_stale(db: psycopg.Connection, cli_findings: list[Finding]) -> None:
    found = cli_findings + [f for rule in RULES for f in our_findings(db, rule)]
    for entry in allowed():
        assert entry.why.strip(), f"{entry}: give the reason"
        assert any(entry.matches(f) for f in found), (
            f"{entry.tool} {entry.rule} no longer reports {entry.object}: remove the entry"
        )


CONTROLS = [(rule, i) for rule in RULES for i in range(len(rule.controls))]


@pytest.mark.parametrize(("rule", "index"), CONTROLS,
                         ids=[f"{r.name}-{i}" for r, i in CONTROLS])
def test_our_rule_reports_a_deliberate_violation(
    db: psycopg.Connection, rule: Rule, index: int
) -> None:
    control = rule.controls[index]
    before = {f.object for f in our_findings(db, rule)}
    db.execute(control.setup)
    after = {f.object for f in our_findings(db, rule)}
    assert after - before == {control.finding}
    assert before <= after


def test_the_cli_checks_report_deliberate_violations(cluster: Cluster) -> None:
    """The harness would pass vacuously if the CLI checked nothing or its output were
    misread: in a scratch database, a table without a primary key, a function with a
    plpgsql_check warning and a procedure without a pinned search_path must be reported
    and not allowed."""
    with cluster.connect("supabase_admin", autocommit=True) as admin:
        admin.execute("drop database if exists lint_controls")
        admin.execute("create database lint_controls")
    try:
        with cluster.connect("supabase_admin", "lint_controls", autocommit=True) as conn:
            conn.execute("create extension plpgsql_check")
            conn.execute("""
                create table public.lint_no_pk (note text);
                create function public.lint_text_to_int() returns integer language plpgsql
                as $$ declare v integer := '1'; begin return v; end $$;
                create procedure lint_batches() language plpgsql
                as $$ begin commit; end $$;
            """)
        url = cluster.url("supabase_admin", "lint_controls")
        found = not_allowed(advisors(url) + plpgsql_check(url))
        keys = {(f.tool, f.rule, f.object) for f in found}
        assert ("advisors", "no_primary_key", "public.lint_no_pk") in keys
        assert ("advisors", "function_search_path_mutable", "public.lint_batches") in keys
        assert ("lint", "plpgsql_check warning", "public.lint_text_to_int") in keys
    finally:
        with cluster.connect("supabase_admin", autocommit=True) as admin:
            admin.execute("drop database lint_controls with (force)")


def test_a_committing_procedure_cannot_pin_its_search_path(cluster: Cluster) -> None:
    """Why the two job procedures keep a mutable search_path: the advisors accept only a
    SET search_path clause, and PostgreSQL refuses COMMIT in a procedure that has any SET
    clause (set_config in the body is not seen by the rule)."""
    with cluster.connect(autocommit=True) as conn:
        conn.execute("create procedure pg_temp.commits() language plpgsql"
                     " as $$ begin commit; end $$")
        conn.execute("call pg_temp.commits()")
        conn.execute("create procedure pg_temp.commits_pinned() language plpgsql"
                     " set search_path = '' as $$ begin commit; end $$")
        with pytest.raises(psycopg.errors.InvalidTransactionTermination):
            conn.execute("call pg_temp.commits_pinned()")
