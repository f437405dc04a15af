"""One md5 over a whole database, catalog and data, so a test can prove that a refused
adoption left the database byte-for-byte as it was."""

from __future__ import annotations

import hashlib

import psycopg

# Schemas PostgreSQL itself owns; everything else (public, auth, storage, cron, vault, net,
# supabase_migrations, supabase_functions, extensions, ...) is covered.
SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"
USER_NAMESPACE = (f"n.nspname not in {SYSTEM_SCHEMAS} and n.nspname not like 'pg_temp%'"
                  " and n.nspname not like 'pg_toast_temp%'")

# Each query returns one text column; its rows, sorted, are hashed in order.
CATALOG_QUERIES: dict[str, str] = {
    "schemas": f"""
        select concat_ws('|', n.nspname, pg_get_userbyid(n.nspowner), n.nspacl::text)
        from pg_namespace as n where {USER_NAMESPACE}""",
    "extensions": """
        select concat_ws('|', e.extname, e.extversion, e.extnamespace::regnamespace::text)
        from pg_extension as e""",
    "relations": f"""
        select concat_ws('|', n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner),
                         c.relacl::text, c.relrowsecurity, c.relforcerowsecurity,
                         c.relpersistence, c.reloptions::text, c.relreplident,
                         obj_description(c.oid, 'pg_class'))
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where {USER_NAMESPACE}""",
    "columns": f"""
        select concat_ws('|', n.nspname, c.relname, a.attnum, a.attname,
                         format_type(a.atttypid, a.atttypmod), a.attnotnull,
                         pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                         a.attacl::text, col_description(c.oid, a.attnum))
        from pg_attribute as a
        join pg_class as c on c.oid = a.attrelid
        join pg_namespace as n on n.oid = c.relnamespace
        left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where {USER_NAMESPACE} and a.attnum > 0 and not a.attisdropped""",
    "types": f"""
        select concat_ws('|', n.nspname, t.typname, t.typtype, pg_get_userbyid(t.typowner),
                         t.typacl::text, format_type(t.typbasetype, t.typtypmod),
                         t.typnotnull, t.typdefault,
                         (select string_agg(e.enumlabel, ',' order by e.enumsortorder)
                          from pg_enum as e where e.enumtypid = t.oid),
                         (select string_agg(pg_get_constraintdef(k.oid), ',' order by k.conname)
                          from pg_constraint as k where k.contypid = t.oid))
        from pg_type as t join pg_namespace as n on n.oid = t.typnamespace
        where {USER_NAMESPACE} and t.typtype in ('e', 'd', 'c', 'r', 'm')
          and (t.typrelid = 0 or (select c.relkind from pg_class as c
                                  where c.oid = t.typrelid) = 'c')""",
    "constraints": f"""
        select concat_ws('|', n.nspname, k.conrelid::regclass::text, k.conname, k.contype,
                         pg_get_constraintdef(k.oid), k.convalidated, k.condeferrable)
        from pg_constraint as k join pg_namespace as n on n.oid = k.connamespace
        where {USER_NAMESPACE} and k.conrelid <> 0""",
    "indexes": f"""
        select concat_ws('|', n.nspname, pg_get_indexdef(i.indexrelid), i.indisvalid)
        from pg_index as i
        join pg_class as c on c.oid = i.indexrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where {USER_NAMESPACE}""",
    "triggers": """
        select concat_ws('|', pg_get_triggerdef(t.oid), t.tgenabled)
        from pg_trigger as t
        join pg_class as c on c.oid = t.tgrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where not t.tgisinternal and n.nspname not in ('pg_catalog', 'information_schema')""",
    "event_triggers": """
        select concat_ws('|', e.evtname, e.evtevent, e.evtfoid::regproc::text, e.evtenabled,
                         e.evttags::text)
        from pg_event_trigger as e""",
    # pg_get_functiondef carries the body, language, volatility, SECURITY DEFINER and SET.
    "functions": f"""
        select concat_ws('|', n.nspname, p.oid::regprocedure::text,
                         pg_get_userbyid(p.proowner), p.proacl::text,
                         case when p.prokind in ('f', 'p', 'w')
                              then pg_get_functiondef(p.oid) end,
                         p.proconfig::text, obj_description(p.oid, 'pg_proc'))
        from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
        where {USER_NAMESPACE}""",
    "policies": """
        select concat_ws('|', p.schemaname, p.tablename, p.policyname, p.permissive,
                         p.roles::text, p.cmd, p.qual, p.with_check)
        from pg_policies as p""",
    "default_acls": """
        select concat_ws('|', pg_get_userbyid(d.defaclrole), d.defaclnamespace::regnamespace::text,
                         d.defaclobjtype, d.defaclacl::text)
        from pg_default_acl as d""",
    "publications": """
        select concat_ws('|', p.pubname, pg_get_userbyid(p.pubowner), p.puballtables,
                         p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate,
                         (select string_agg(format('%I.%I', pt.schemaname, pt.tablename), ','
                                            order by pt.schemaname, pt.tablename)
                          from pg_publication_tables as pt where pt.pubname = p.pubname))
        from pg_publication as p""",
    "roles": """
        select concat_ws('|', r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole,
                         r.rolcreatedb, r.rolcanlogin, r.rolbypassrls,
                         (select string_agg(g.rolname, ',' order by g.rolname)
                          from pg_auth_members as m join pg_roles as g on g.oid = m.roleid
                          where m.member = r.oid))
        from pg_roles as r where r.rolname not like 'pg\\_%'""",
    "database": """
        select concat_ws('|', d.datname, pg_get_userbyid(d.datdba), d.datacl::text,
                         (select string_agg(array_to_string(s.setconfig, ','), ';')
                          from pg_db_role_setting as s where s.setdatabase = d.oid))
        from pg_database as d where d.datname = current_database()""",
}


def _hash_rows(conn: psycopg.Connection, sql: str) -> str:
    rows = [r[0] or "" for r in conn.execute(sql).fetchall()]
    return hashlib.md5("\n".join(sorted(rows)).encode()).hexdigest()


def _data_parts(conn: psycopg.Connection) -> dict[str, str]:
    """Every table's rows (a row's text; rows ordered by their md5, which is a total
    order on the text), and every sequence's position."""
    parts = {}
    tables = conn.execute(f"""
        select format('%I.%I', n.nspname, c.relname), c.relkind
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where {USER_NAMESPACE} and c.relkind in ('r', 'p', 'S')
        order by 1""").fetchall()
    for name, kind in tables:
        if kind == "S":
            sql = f"select concat_ws('|', last_value, is_called) from {name}"
        else:
            sql = (f"select coalesce(md5(string_agg(md5(t::text), '' order by md5(t::text))), '')"
                   f" from {name} as t")
        parts[f"data {name}"] = conn.execute(sql).fetchone()[0]
    return parts


def database_checksum(conn: psycopg.Connection, *, parts: bool = False) -> str | dict[str, str]:
    """md5 over the catalog (schemas, extensions, tables, columns, types, constraints,
    indexes, triggers, functions with bodies and settings, policies, ACLs, default ACLs,
    publications, roles, the database's settings) and the data of every table (cron.job,
    supabase_migrations.schema_migrations and auth.users included) and sequence. Read it
    as a superuser (supabase_admin) so no row is hidden by RLS or privileges. With
    parts=True, the per-part hashes instead, to see what changed."""
    hashes = {f"catalog {k}": _hash_rows(conn, sql) for k, sql in CATALOG_QUERIES.items()}
    hashes |= _data_parts(conn)
    if parts:
        return hashes
    return hashlib.md5("\n".join(f"{k}={v}" for k, v in sorted(hashes.items())).encode()).hexdigest()
