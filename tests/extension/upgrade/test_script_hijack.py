"""No object a role plants runs during CREATE EXTENSION or ALTER EXTENSION UPDATE.

A role with CREATE on `public` (the extension's schema by default) and on the
superuser's "$user" schema plants look-alike operators, functions and casts:
exact-type matches that PostgreSQL prefers over pg_catalog's (`=(oid,
regclass)` beats `=(oid, oid)`), and same-named ones that only a search_path
listing them before pg_catalog would pick.  Each one, when run, raises a
WARNING (which reaches the client and the server log even when the statement
later fails) and then does what pg_catalog's would, so that one hit does not
hide the next.  The install script, and the update from each release as it
shipped, run with the plants in place; not one may run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.cluster import Cluster
from tests.extension.upgrade.conftest import CRON_DATABASE
from tests.extension.upgrade.released import current_version, earlier_releases
from tests.extension.upgrade.state import extension_version

PLANTER = "planter"
MARK = "planted object ran"

# (operator, left type, right type, result type, what pg_catalog's would compute)
OPERATORS = [
    ("=", "oid", "regclass", "boolean", "$1 OPERATOR(pg_catalog.=) $2::pg_catalog.oid"),
    ("=", "regclass", "oid", "boolean", "$1::pg_catalog.oid OPERATOR(pg_catalog.=) $2"),
    ("=", "oid", "regprocedure", "boolean", "$1 OPERATOR(pg_catalog.=) $2::pg_catalog.oid"),
    ("=", "oid", "oid", "boolean", "$1 OPERATOR(pg_catalog.=) $2"),
    ("=", "name", "name", "boolean", "$1 OPERATOR(pg_catalog.=) $2"),
    ("=", "name", "text", "boolean", "$1::pg_catalog.text OPERATOR(pg_catalog.=) $2"),
    ("=", "text", "text", "boolean", "$1 OPERATOR(pg_catalog.=) $2"),
    ("=", "boolean", "boolean", "boolean", "$1 OPERATOR(pg_catalog.=) $2"),
    ("<>", "text", "text", "boolean", "$1 OPERATOR(pg_catalog.<>) $2"),
    ("~", "text", "text", "boolean", "$1 OPERATOR(pg_catalog.~) $2"),
    ("||", "text", "text", "text", "$1 OPERATOR(pg_catalog.||) $2"),
    ("<=", "timestamptz", "timestamptz", "boolean", "$1 OPERATOR(pg_catalog.<=) $2"),
    ("*", "double precision", "integer", "double precision", "$1 OPERATOR(pg_catalog.*) $2::pg_catalog.float8"),
]

# (name, argument types, result type, what pg_catalog's would compute): every
# function the scripts call, and the 0.1.0 names 004-telemetry-names.sql drops.
FUNCTIONS = [
    ("run_job", "", "void", None),
    ("send_report", "", "void", None),
    ("get_report", "", "jsonb", "'{}'::pg_catalog.jsonb"),
    ("telemetry_tick", "", "jsonb", "'{}'::pg_catalog.jsonb"),
    ("format", "text, text", "text", "pg_catalog.format($1, $2)"),
    ("format", "text, integer, integer", "text", "pg_catalog.format($1, $2, $3)"),
    ("lower", "text", "text", "pg_catalog.lower($1)"),
    ("btrim", "text, text", "text", "pg_catalog.btrim($1, $2)"),
    ("length", "text", "integer", "pg_catalog.length($1)"),
    ("now", "", "timestamptz", "pg_catalog.now()"),
    ("clock_timestamp", "", "timestamptz", "pg_catalog.clock_timestamp()"),
    ("random", "", "double precision", "pg_catalog.random()"),
    ("floor", "double precision", "double precision", "pg_catalog.floor($1)"),
    ("gen_random_uuid", "", "uuid", "pg_catalog.gen_random_uuid()"),
    ("current_database", "", "name", "pg_catalog.current_database()"),
    ("current_setting", "text, boolean", "text", "pg_catalog.current_setting($1, $2)"),
    ("set_config", "text, text, boolean", "text", "pg_catalog.set_config($1, $2, $3)"),
    ("to_regclass", "text", "regclass", "pg_catalog.to_regclass($1)"),
    ("to_regprocedure", "text", "regprocedure", "pg_catalog.to_regprocedure($1)"),
    ("pg_extension_config_dump", "regclass, text", "void", None),
    ("jsonb_build_object", "text, text, text, text", "jsonb", "pg_catalog.jsonb_build_object($1, $2, $3, $4)"),
    ("to_char", "timestamp, text", "text", "pg_catalog.to_char($1, $2)"),
]

# Functions the extension creates in its schema (public): planted there, PostgreSQL
# refuses CREATE EXTENSION ("not a member of extension"), so they are planted in "$user" only.
EXTENSION_OWN = {"get_report", "telemetry_tick"}

# Casts a role may create (it owns one of the types): implicit ones from the types the
# scripts use into a type of its own, and a pg_catalog name (to_regclass) taking that
# type, which a call could reach through them.
CAST_SOURCES = ["text", "name", "oid", "regclass", "integer"]


def _planted_function(schema: str, name: str, args: str, result: str, value: str | None, label: str) -> str:
    body = f"RETURN {value};" if value else ("RETURN;" if result == "void" else "RETURN NULL;")
    return (
        f"CREATE FUNCTION {schema}.{name}({args}) RETURNS {result} LANGUAGE plpgsql AS $plant$\n"
        f"BEGIN\n    RAISE WARNING '{MARK}: % as %', {sql.quote(label)}, CURRENT_USER;\n    {body}\nEND\n$plant$;\n"
    )


def plants(schema: str) -> list[str]:
    """The statements that plant everything in `schema` (run as the planter)."""
    statements: list[str] = []
    for number, (op, left, right, result, value) in enumerate(OPERATORS):
        function = f"op_{number}"
        label = f"{schema}.{op}({left}, {right})"
        statements.append(_planted_function(schema, function, f"{left}, {right}", result, value, label))
        statements.append(
            f"CREATE OPERATOR {schema}.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = {schema}.{function})"
        )
    for name, args, result, returned in FUNCTIONS:
        if schema == "public" and name in EXTENSION_OWN:
            continue
        statements.append(_planted_function(schema, name, args, result, returned, f"{schema}.{name}({args})"))
    statements.append(f"CREATE TYPE {schema}.trap AS ENUM ('trap')")
    statements.append(
        _planted_function(schema, "to_regclass", f"{schema}.trap", "regclass", "NULL", f"{schema}.to_regclass(trap)")
    )
    for source in CAST_SOURCES:
        function = f"trap_from_{source}"
        label = f"cast ({source} AS {schema}.trap)"
        statements.append(_planted_function(schema, function, source, f"{schema}.trap", "'trap'", label))
        statements.append(
            f"CREATE CAST ({source} AS {schema}.trap) WITH FUNCTION {schema}.{function}({source}) AS IMPLICIT"
        )
    return statements


def plant(conn: psycopg.Connection[Any], superuser: str, user_schema: bool = True) -> None:
    """The planter gets CREATE on public and a schema named after the superuser ("$user"), then plants in both."""
    conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(PLANTER)))
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(PLANTER)))
    schemas = ["public"]
    if user_schema:
        conn.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(superuser), sql.Identifier(PLANTER))
        )
        schemas.append(sql.Identifier(superuser).as_string(conn))
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(PLANTER)))
    try:
        for schema in schemas:
            for statement in plants(schema):
                # DuplicateFunction: the extension's own function of that name (0.1.0's run_job), already there.
                with suppress(psycopg.errors.DuplicateFunction):
                    conn.execute(statement)
    finally:
        conn.execute("RESET ROLE")
    planted = conn.execute(
        "SELECT count(*) FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner WHERE r.rolname = %s", [PLANTER]
    ).fetchone()
    assert planted is not None and planted[0] >= len(schemas) * (len(OPERATORS) + len(CAST_SOURCES))


@contextmanager
def hits(cluster: Cluster, conn: psycopg.Connection[Any]) -> Iterator[list[str]]:
    """What ran of the plants while the block ran: WARNINGs to this client and in the server log."""
    seen: list[str] = []
    conn.add_notice_handler(lambda diag: seen.append(diag.message_primary or ""))
    offset = cluster.log_offset()
    yield seen
    seen += [line for line in cluster.log_since(offset).splitlines() if MARK in line]


def ran(seen: list[str]) -> list[str]:
    return [message for message in seen if MARK in message]


@contextmanager
def database(cluster: Cluster) -> Iterator[psycopg.Connection[Any]]:
    """The upgrade cluster's pg_cron database; pg_cron is created before the plants (its script is not ours)."""
    with cluster.database(CRON_DATABASE, extension=False) as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        try:
            yield conn
        finally:
            if conn.execute("SELECT FROM pg_roles WHERE rolname = %s", [PLANTER]).fetchone() is not None:
                conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(PLANTER)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(PLANTER)))


def run_with_plants(cluster: Cluster, dbname: str, command: str) -> list[str]:
    """`command` in a new session of the superuser, its search_path the default ("$user", public)."""
    with cluster.connect(dbname) as conn:
        path_before = conn.execute("SHOW search_path").fetchone()
        assert path_before == ('"$user", public',)
        with hits(cluster, conn) as seen:
            conn.execute(command)
        # The script's pinned search_path ends with it.
        assert conn.execute("SHOW search_path").fetchone() == path_before
        with hits(cluster, conn) as after:
            conn.execute("SELECT public.get_report()")
        assert ran(after) == []
        return ran(seen)


# CREATE EXTENSION without SCHEMA creates the extension in the first schema of the
# search_path that exists: with a "$user" schema there, in that one (the README says
# to name the schema then).  So the plants in "$user" are met with SCHEMA public.
@pytest.mark.parametrize(
    ("user_schema", "command"),
    [(False, "CREATE EXTENSION telemetry CASCADE"), (True, "CREATE EXTENSION telemetry SCHEMA public CASCADE")],
    ids=["public", "public-and-user-schema"],
)
def test_create_extension_runs_nothing_planted(upgrade_cluster: Cluster, user_schema: bool, command: str) -> None:
    c = upgrade_cluster
    with database(c) as conn:
        plant(conn, c.user, user_schema)
        hit = run_with_plants(c, CRON_DATABASE, command)
        assert hit == [], "CREATE EXTENSION ran planted objects as the superuser:\n" + "\n".join(hit)
        with c.connect(CRON_DATABASE) as after:
            assert extension_version(after) == current_version()
            # The planter's objects are still there, still planted (nothing replaced them).
            assert after.execute("SELECT to_regprocedure('public.run_job()') IS NOT NULL").fetchone() == (True,)


@pytest.mark.parametrize("release", earlier_releases())
def test_update_runs_nothing_planted(release: str, upgrade_cluster: Cluster) -> None:
    c = upgrade_cluster
    with database(c) as conn:
        conn.execute(f"CREATE EXTENSION telemetry VERSION '{release}' CASCADE")
        plant(conn, c.user)
        hit = run_with_plants(c, CRON_DATABASE, "ALTER EXTENSION telemetry UPDATE")
        assert hit == [], f"ALTER EXTENSION UPDATE from {release} ran planted objects as the superuser:\n" + "\n".join(
            hit
        )
        with c.connect(CRON_DATABASE) as after:
            assert extension_version(after) == current_version()


def test_unqualified_call_is_what_the_readme_warns_about(upgrade_cluster: Cluster) -> None:
    """The planter's "$user" schema shadows an unqualified get_report(): the README says to qualify it."""
    c = upgrade_cluster
    with database(c) as conn:
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        plant(conn, c.user)
        with c.connect(CRON_DATABASE) as caller, hits(c, caller) as seen:
            caller.execute("SELECT get_report()")
        user_schema = sql.Identifier(c.user).as_string(conn)
        assert any(f"{user_schema}.get_report()" in message for message in ran(seen)), seen
        with c.connect(CRON_DATABASE) as caller, hits(c, caller) as seen:
            caller.execute("SELECT public.get_report()")
        assert ran(seen) == []


def test_a_schema_another_role_owns_is_refused(upgrade_cluster: Cluster) -> None:
    """Without SCHEMA, the extension would land in the planter's "$user" schema, whose owner could
    drop it and put look-alikes in its place: CREATE EXTENSION refuses, and says what to do."""
    c = upgrade_cluster
    with database(c) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(PLANTER)))
        conn.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(c.user), sql.Identifier(PLANTER))
        )
        with pytest.raises(psycopg.errors.RaiseException) as refused:
            conn.execute("CREATE EXTENSION telemetry CASCADE")
        assert f'schema "{c.user}" is owned by role "{PLANTER}", which is not a superuser' in str(refused.value)
        assert refused.value.diag.message_hint is not None
        assert "CREATE EXTENSION telemetry SCHEMA public" in refused.value.diag.message_hint
        conn.execute("CREATE EXTENSION telemetry SCHEMA public CASCADE")
        assert extension_version(conn) == current_version()
        assert conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'telemetry'"
        ).fetchone() == ("public",)
