"""pg_dump and pg_restore keep the options: in force at once, also in a copy of a template with the extension."""

from __future__ import annotations

import subprocess
from typing import Any

import psycopg

from tests.cluster import Cluster
from tests.extension.job.helpers import seconds_until, tick
from tests.helpers import report

DAY = 86400.0


def _connection(c: Cluster) -> list[str]:
    return ["-h", str(c.socketdir), "-p", str(c.port), "-U", c.user]


def _dump(c: Cluster, dbname: str) -> bytes:
    return subprocess.run(
        [str(c.tree.bindir / "pg_dump"), *_connection(c), "-Fc", dbname], check=True, capture_output=True
    ).stdout


def _restore(c: Cluster, dump: bytes, dbname: str) -> None:
    result = subprocess.run(
        [str(c.tree.bindir / "pg_restore"), *_connection(c), "--exit-on-error", "-d", dbname],
        input=dump,
        capture_output=True,
        check=False,
    )
    assert (result.returncode, result.stderr.decode()) == (0, "")


def _options(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return conn.execute("SELECT name, value FROM _telemetry.options ORDER BY name").fetchall()


def _lineage(conn: psycopg.Connection[Any]) -> list[str]:
    return [row[0] for row in conn.execute("SELECT exported_db_uuid::text FROM _telemetry.lineage ORDER BY 1")]


def test_a_restored_database_plans_its_first_report_with_the_restored_grace(cluster: Cluster) -> None:
    with cluster.database("restore_grace_source") as source:
        source.execute("SELECT telemetry_set_option('grace', '2 days')")
        source.execute("SELECT telemetry_set_option('jitter', '0')")
        dump = _dump(cluster, "restore_grace_source")
    with cluster.database("restore_grace", extension=False) as restored:
        _restore(cluster, dump, "restore_grace")
        assert _options(restored) == [("grace", "2 days"), ("jitter", "0")]
        # The plain-SQL tick reads this due time: two days from the restore's CREATE EXTENSION.
        assert abs(seconds_until(restored) - 2 * DAY) < 600
        assert tick(restored)["outcome"] == "not_due"


def test_a_restore_into_a_copy_of_a_template_with_the_extension_keeps_the_dumped_options(cluster: Cluster) -> None:
    """As into a database made by createdb when template1 holds the extension."""
    names = ("restore_template", "restore_source", "restore_copy")
    try:
        cluster.create_database("restore_template", extension=True)
        with cluster.connect("restore_template") as template:
            template.execute("SELECT telemetry_set_option('endpoint', 'http://127.0.0.1:9/v1/report')")
            template.execute("SELECT telemetry_set_option('grace', '3 hours')")
        cluster.create_database("restore_source", template="restore_template")
        cluster.create_database("restore_copy", template="restore_template")
        with cluster.connect("restore_source") as source:
            # The source is a copy too: it carries the template's lineage row, as the target does.
            source.execute("SELECT telemetry_set_option('grace', '2 days')")
            source.execute("SELECT telemetry_set_option('jitter', '0')")
            source.execute("SELECT telemetry_set_option('interval', '3 days')")
            options, lineage, exported = _options(source), _lineage(source), report(source)["exported_db_uuid"]
        dump = _dump(cluster, "restore_source")
        with cluster.connect("restore_copy") as restored:
            _restore(cluster, dump, "restore_copy")
            assert _options(restored) == options
            assert _lineage(restored) == lineage and report(restored)["exported_db_uuid"] == exported
            # The copy takes its own identity at its first tick, and plans with the restored options.
            assert tick(restored)["outcome"] == "not_due"
            assert abs(seconds_until(restored) - 2 * DAY) < 600
    finally:
        cluster.drop_databases(*names)
