"""The extension's objects as rows of text, to compare an updated database with a fresh one.

What counts: every member (pg_depend), each function's definition and settings,
tables with their columns, constraints, indexes and triggers, sequences, views, grants,
comments, event triggers, the tables registered for pg_dump, the schema's grants,
and which migrations the ledger records (name and checksum).  What does not:
object ids, the ledger's applied_at and applied_by_version (an updated database
ran its first migrations under the earlier release), and the rows of state.
"""

from __future__ import annotations

import difflib
from typing import Any

import psycopg

MEMBERS = """
    SELECT d.classid, d.objid INTO TEMP telemetry_members
      FROM pg_catalog.pg_depend AS d JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
       AND e.extname = 'telemetry'
"""

# Each query returns rows of text; "aclitems sorted" so grant order does not count.
QUERIES: dict[str, str] = {
    "extension": """
        SELECT e.extname, e.extversion, n.nspname, e.extrelocatable::text,
               (SELECT pg_catalog.string_agg(c::pg_catalog.regclass::text, ', ' ORDER BY c::pg_catalog.regclass::text)
                  FROM pg_catalog.unnest(e.extconfig) AS c) AS dumped_tables,
               pg_catalog.array_to_string(e.extcondition, ', ')
          FROM pg_catalog.pg_extension AS e JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
         WHERE e.extname = 'telemetry'""",
    "members": """
        SELECT pg_catalog.pg_describe_object(classid, objid, 0) FROM telemetry_members ORDER BY 1""",
    "functions": """
        SELECT p.oid::pg_catalog.regprocedure::text, p.prokind::text, l.lanname,
               pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid),
               p.provolatile::text, p.prosecdef::text, p.proisstrict::text, p.proleakproof::text,
               p.proparallel::text, p.procost::text, p.prorows::text,
               pg_catalog.array_to_string(p.proconfig, ', '), p.prosrc, p.probin,
               (SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text) FROM pg_catalog.unnest(p.proacl) AS a),
               pg_catalog.obj_description(p.oid, 'pg_proc')
          FROM telemetry_members AS m JOIN pg_catalog.pg_proc AS p ON p.oid = m.objid
          JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
         WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass ORDER BY 1""",
    "relations": """
        SELECT c.oid::pg_catalog.regclass::text, c.relkind::text, c.relpersistence::text,
               (SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text) FROM pg_catalog.unnest(c.relacl) AS a),
               pg_catalog.obj_description(c.oid, 'pg_class'),
               CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END
          FROM telemetry_members AS m JOIN pg_catalog.pg_class AS c ON c.oid = m.objid
         WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass ORDER BY 1""",
    "columns": """
        SELECT c.oid::pg_catalog.regclass::text, a.attname::text,
               pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull::text,
               pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity::text, a.attgenerated::text,
               (SELECT pg_catalog.string_agg(x::text, ' ' ORDER BY x::text) FROM pg_catalog.unnest(a.attacl) AS x),
               pg_catalog.col_description(c.oid, a.attnum)
          FROM telemetry_members AS m JOIN pg_catalog.pg_class AS c ON c.oid = m.objid
          JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_catalog.pg_attrdef AS ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
         WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass ORDER BY 1, 2""",
    "constraints": """
        SELECT co.conrelid::pg_catalog.regclass::text, co.conname::text, co.contype::text,
               pg_catalog.pg_get_constraintdef(co.oid)
          FROM telemetry_members AS m JOIN pg_catalog.pg_constraint AS co ON co.conrelid = m.objid
         WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass ORDER BY 1, 2""",
    "indexes": """
        SELECT pg_catalog.pg_get_indexdef(i.indexrelid)
          FROM telemetry_members AS m JOIN pg_catalog.pg_index AS i ON i.indrelid = m.objid
         WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass ORDER BY 1""",
    "triggers": """
        SELECT pg_catalog.pg_get_triggerdef(t.oid)
          FROM telemetry_members AS m JOIN pg_catalog.pg_trigger AS t ON t.tgrelid = m.objid
         WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND NOT t.tgisinternal ORDER BY 1""",
    "sequences": """
        SELECT s.seqrelid::pg_catalog.regclass::text, pg_catalog.format_type(s.seqtypid, NULL),
               s.seqstart::text, s.seqincrement::text, s.seqmax::text, s.seqmin::text, s.seqcycle::text
          FROM pg_catalog.pg_sequence AS s JOIN pg_catalog.pg_class AS c ON c.oid = s.seqrelid
          JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
         WHERE n.nspname = '_telemetry' ORDER BY 1""",
    "schemas": """
        SELECT n.nspname::text,
               (SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text) FROM pg_catalog.unnest(n.nspacl) AS a),
               pg_catalog.obj_description(n.oid, 'pg_namespace')
          FROM telemetry_members AS m JOIN pg_catalog.pg_namespace AS n ON n.oid = m.objid
         WHERE m.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass ORDER BY 1""",
    "event_triggers": """
        SELECT t.evtname::text, t.evtevent::text, t.evtenabled::text, t.evtfoid::pg_catalog.regproc::text,
               pg_catalog.array_to_string(t.evttags, ', ')
          FROM telemetry_members AS m JOIN pg_catalog.pg_event_trigger AS t ON t.oid = m.objid
         WHERE m.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass ORDER BY 1""",
    "migrations": "SELECT name, checksum FROM _telemetry.migrations ORDER BY 1",
}

Catalog = dict[str, list[tuple[Any, ...]]]


def dump(conn: psycopg.Connection[Any]) -> Catalog:
    conn.execute("DROP TABLE IF EXISTS pg_temp.telemetry_members")
    conn.execute(MEMBERS)
    try:
        return {name: conn.execute(query).fetchall() for name, query in QUERIES.items()}
    finally:
        conn.execute("DROP TABLE pg_temp.telemetry_members")


def differences(updated: Catalog, fresh: Catalog) -> str:
    """A unified diff per part that differs; empty when the two are the same."""
    out: list[str] = []
    for name in QUERIES:
        a = [" | ".join("" if v is None else str(v) for v in row) for row in updated[name]]
        b = [" | ".join("" if v is None else str(v) for v in row) for row in fresh[name]]
        if a != b:
            out += difflib.unified_diff(a, b, f"{name} (updated)", f"{name} (fresh)", lineterm="", n=1)
    return "\n".join(out)


def summary(catalog: Catalog) -> str:
    kinds: dict[str, int] = {}
    for row in catalog["relations"]:
        kinds[row[1]] = kinds.get(row[1], 0) + 1
    return (
        f"{len(catalog['members'])} members: {len(catalog['functions'])} functions, "
        f"{kinds.get('r', 0)} tables ({len(catalog['columns'])} columns, {len(catalog['constraints'])} constraints, "
        f"{len(catalog['indexes'])} indexes, {len(catalog['triggers'])} triggers), "
        f"{len(catalog['sequences'])} sequences, {kinds.get('v', 0)} views, "
        f"{len(catalog['event_triggers'])} event triggers, {len(catalog['schemas'])} schema; "
        f"dumped tables: {catalog['extension'][0][4]}; ledger: {len(catalog['migrations'])} migrations"
    )
