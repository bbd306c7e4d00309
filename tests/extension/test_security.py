"""Pinned search_path, no SQL from values, who may call what."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cluster import Cluster
from tests.helpers import assert_denied, roles, scalar
from tests.pgtree import PgTree

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "telemetry_extension"


def test_every_extension_function_pins_search_path(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        """
        SELECT p.oid::regprocedure::text, coalesce(p.proconfig, '{}')
          FROM pg_depend d
          JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'telemetry'
          JOIN pg_proc p ON p.oid = d.objid AND d.classid = 'pg_proc'::regclass
         WHERE d.deptype = 'e'
        """
    ).fetchall()
    assert len(rows) >= 4
    unpinned = [name for name, config in rows if "search_path=pg_catalog, pg_temp" not in config]
    assert unpinned == []


def test_plain_role_is_denied_and_pg_monitor_is_allowed(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    with roles(db, "plain_user LOGIN", "monitor_user LOGIN IN ROLE pg_monitor"):
        with cluster.connect(db.info.dbname, user="plain_user") as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute("SELECT get_report()")
            assert_denied(
                conn,
                "SELECT * FROM _telemetry.instance",
                "INSERT INTO _telemetry.lineage DEFAULT VALUES",
                "SELECT _telemetry.load_python()",
            )
        with cluster.connect(db.info.dbname, user="monitor_user") as conn:
            assert scalar(conn, "SELECT get_report() ->> 'metrics_level'") == "basic"
            assert_denied(conn, "DELETE FROM _telemetry.instance")


def _sql_calls(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    """Each call of a method that takes SQL, with the method's name."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"rows", "row", "value", "prepare", "execute", "registered_query_rows"}
            and node.args
        ):
            yield node.func.attr, node


# The one statement whose text is not a constant: a metric's query that a superuser
# registered with telemetry_register_metric() (code a superuser supplied, like a function
# body; stored, never combined with a value).  Database.registered_query_rows runs
# it, and only telemetry_extension/metrics/registered.py may call that, with the stored text.
REGISTERED_QUERY_CALLERS = {("registered.py", "query")}


def test_sql_text_is_always_a_constant() -> None:
    """Values travel as parameters: no f-string, %, + or variable as statement text."""
    offenders = []
    checked = 0
    registered_calls = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "db.py":
            continue  # the door itself: it passes its callers' constant text on to plpy.prepare
        for method, call in _sql_calls(ast.parse(path.read_text())):
            first = call.args[0]
            if method == "execute" and isinstance(first, ast.Name) and first.id == "plan":
                continue  # executing a prepared plan
            if method == "registered_query_rows":
                registered_calls.append((path.name, first.id if isinstance(first, ast.Name) else ast.dump(first)))
                continue
            checked += 1
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                offenders.append(f"{path.name}:{call.lineno}")
    assert checked >= 5
    assert offenders == []
    assert set(registered_calls) == REGISTERED_QUERY_CALLERS and len(registered_calls) == 1


@pytest.fixture(scope="module")
def cron_cluster(pg_tree: PgTree) -> Iterator[Cluster]:
    """pg_cron (in database postgres) without telemetry's preload: no background worker, so the
    status view looks for a pg_cron entry."""
    with Cluster(pg_tree, name="cron-lookalike", conf={"shared_preload_libraries": "'pg_cron'"}) as c:
        yield c


def test_a_look_alike_cron_schema_is_never_read_written_or_called(cron_cluster: Cluster) -> None:
    """A role with CREATE on the database makes its own cron.job and cron.schedule before pg_cron is there:
    CREATE EXTENSION, the status view and DROP EXTENSION run as a superuser and must touch none of it."""
    cluster = cron_cluster
    with cluster.connect() as admin:
        admin.execute("CREATE ROLE cron_mimic")
    try:
        with cluster.database("lookalike_cron", extension=False) as conn:
            conn.execute("GRANT CREATE ON DATABASE lookalike_cron TO cron_mimic")
            conn.execute("SET ROLE cron_mimic")
            conn.execute("CREATE SCHEMA cron")
            conn.execute("CREATE TABLE cron.calls (who text)")
            conn.execute("GRANT INSERT ON cron.calls TO PUBLIC")
            conn.execute("CREATE TABLE cron.job (jobname text, database text, command text, active boolean)")
            # A row that, were it read, would claim pg_cron calls the tick here.
            conn.execute(
                "INSERT INTO cron.job VALUES ('telemetry', current_database(), 'SELECT _telemetry.tick()', true)"
            )
            conn.execute(
                "CREATE FUNCTION cron.schedule(text, text, text) RETURNS bigint LANGUAGE sql"
                " AS $$ INSERT INTO cron.calls VALUES (current_user) RETURNING 1::bigint $$"
            )
            conn.execute(
                "CREATE FUNCTION cron.mark() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN INSERT INTO cron.calls VALUES (current_user); RETURN NULL; END $$"
            )
            for event in ("INSERT OR UPDATE OR DELETE", "TRUNCATE"):
                conn.execute(f"CREATE TRIGGER mark_{event[:3]} AFTER {event} ON cron.job EXECUTE FUNCTION cron.mark()")
            conn.execute("RESET ROLE")

            conn.execute("CREATE EXTENSION telemetry CASCADE")
            status = conn.execute("SELECT tick_caller, tick_command FROM telemetry_status").fetchone()
            conn.execute("DROP EXTENSION telemetry")

            # pg_cron lives in database postgres: the look-alike's row was not taken for an entry.
            assert status is not None and status[0] is None, status
            assert status[1].startswith("in database postgres: SELECT cron.schedule_in_database("), status
            assert conn.execute("SELECT who FROM cron.calls").fetchall() == []
    finally:
        with cluster.connect() as admin:
            admin.execute("DROP ROLE cron_mimic")
