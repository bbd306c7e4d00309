"""Nothing a user named may leave the database: a salted database, scanned report."""

from __future__ import annotations

import json
import socket
from typing import Any

import psycopg

from tests import fake_extensions
from tests.cluster import Cluster
from tests.helpers import execute_each, report, scalar
from tests.pgtree import PgTree

MARKER = "zqxmarker"


def salt(conn: psycopg.Connection[Any], dbname: str) -> None:
    """A marker in every name, comment and setting value a user can choose."""
    m = MARKER
    execute_each(
        conn,
        f"CREATE SCHEMA {m}_schema",
        f"CREATE TABLE {m}_schema.{m}_table ({m}_column text, {m}_id int PRIMARY KEY)",
        f"INSERT INTO {m}_schema.{m}_table SELECT repeat('{m}', 100), g FROM generate_series(1, 100) g",
        f"CREATE INDEX {m}_index ON {m}_schema.{m}_table ({m}_column)",
        f"CREATE VIEW {m}_schema.{m}_view AS SELECT * FROM {m}_schema.{m}_table",
        f"CREATE MATERIALIZED VIEW {m}_schema.{m}_matview AS SELECT * FROM {m}_schema.{m}_table",
        f"CREATE TABLE {m}_schema.{m}_parted (id int) PARTITION BY RANGE (id)",
        f"CREATE TABLE {m}_schema.{m}_part1 PARTITION OF {m}_schema.{m}_parted FOR VALUES FROM (0) TO (10)",
        f"CREATE FUNCTION {m}_schema.{m}_function() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        f"CREATE TYPE {m}_schema.{m}_type AS ENUM ('{m}_label')",
        f"COMMENT ON TABLE {m}_schema.{m}_table IS '{m} table comment'",
        f"COMMENT ON DATABASE \"{dbname}\" IS '{m} database comment'",
        f"COMMENT ON EXTENSION telemetry IS '{m} extension comment'",
        f"COMMENT ON EXTENSION plpython3u IS '{m} extension comment'",
        f"CREATE ROLE {m}_role LOGIN IN ROLE pg_monitor",
        f"ALTER DATABASE \"{dbname}\" SET {m}.setting = '{m}_value'",
        f"ALTER DATABASE \"{dbname}\" SET application_name = '{m}_app'",
        f"ALTER ROLE {m}_role SET search_path = '{m}_schema', public",
        f"CREATE EXTENSION pg_stat_statements SCHEMA {m}_schema",
        # The relation metrics: every kind of relation, index and access method.
        f"CREATE INDEX {m}_hash_index ON {m}_schema.{m}_table USING hash ({m}_column)",
        f"CREATE INDEX {m}_matview_index ON {m}_schema.{m}_matview ({m}_id)",
        f"CREATE FOREIGN DATA WRAPPER {m}_fdw",
        f"CREATE SERVER {m}_server FOREIGN DATA WRAPPER {m}_fdw",
        f"CREATE FOREIGN TABLE {m}_schema.{m}_foreign ({m}_column int) SERVER {m}_server",
        f"CREATE ACCESS METHOD {m}_am TYPE TABLE HANDLER heap_tableam_handler",
        f"CREATE TABLE {m}_schema.{m}_am_table ({m}_column int) USING {m}_am",
        # An in-house extension: name, version and comment are the user's.
        f"CREATE EXTENSION {m}_ext SCHEMA {m}_schema",
        f"COMMENT ON EXTENSION {m}_ext IS '{m} extension comment'",
        # TimescaleDB's catalog (the stand-in of tests/fake_extensions): hypertable, chunks, caggs, jobs.
        "CREATE EXTENSION timescaledb",
        f"CREATE TABLE {m}_schema.{m}_hyper ({m}_at timestamptz, {m}_value text)",
        f"SELECT _timescaledb_functions.fake_hypertable('{m}_schema.{m}_hyper', 2, compress => true)",
        f"INSERT INTO _timescaledb_catalog.continuous_agg VALUES (9, '{m}_schema', '{m}_cagg', false)",
        f"INSERT INTO _timescaledb_config.bgw_job VALUES (1000, '{m} job', '{m}_schema', '{m}_proc', 1)",
        # A registered metric over a marked table, and one whose error message would name one.
        f"SELECT telemetry_register_metric('salted', 'SELECT count(*) FROM {m}_schema.{m}_table', 'Rows.')",
        f"CREATE TABLE {m}_schema.{m}_gone (id int)",
        f"SELECT telemetry_register_metric('gone', 'SELECT count(*) FROM {m}_schema.{m}_gone', 'Rows.')",
        f"DROP TABLE {m}_schema.{m}_gone",
        "VACUUM ANALYZE",
    )


def test_marker_appears_nowhere_in_the_report(pg_tree: PgTree) -> None:
    fake_extensions.install(pg_tree)
    # The cluster's directory (data, socket, log paths) and cluster_name carry the marker too.
    c = Cluster(
        pg_tree,
        dir_name=f"{MARKER}-cluster",
        conf={"cluster_name": f"'{MARKER}_cluster'", f"{MARKER}.conf_setting": f"'{MARKER}'"},
    ).start()
    dbname = f"{MARKER}_db"
    try:
        with c.database(dbname) as conn:
            salt(conn, dbname)
            # Seen by the superuser, and by a pg_monitor member whose own settings carry the marker.
            for user in (None, f"{MARKER}_role"):
                with c.connect(dbname, user=user, application_name=f"{MARKER}_client") as session:
                    seen = report(session)
                    text = json.dumps(seen).lower()
                    assert MARKER not in text
                    # The deeper metrics did run, and the failing ones carry a code only.
                    failed = [key for key, value in seen.items() if isinstance(value, dict) and "error" in value]
                    assert failed == [], failed
                    assert seen["relations"]["tables"]["num_relations"] >= 2
                    assert seen["timescaledb"]["hypertables"]["num_hypertables"] == 1
                    assert seen["extensions"]["num_other"] == 1
                    assert seen["access_methods"]["other"]["num_relations"] == 1
                    if user is None:  # the superuser may read the table; the dropped one is missing
                        assert seen["vendor_metrics"] == {"gone": {"error": "42P01"}, "salted": 100}
                    else:  # the pg_monitor member may not read the user's schema: a code, never a name
                        assert seen["vendor_metrics"] == {"gone": {"error": "42501"}, "salted": {"error": "42501"}}
                    assert socket.gethostname().lower() not in text
                    assert str(c.base).lower() not in text
            conn.execute(f"DROP OWNED BY {MARKER}_role")
            conn.execute(f"DROP ROLE {MARKER}_role")
    finally:
        c.destroy()


def test_the_marker_scan_can_fail(pg_tree: PgTree) -> None:
    """Guard against a vacuous scan: the salted names are really in the catalogs we read."""
    fake_extensions.install(pg_tree)
    with Cluster(pg_tree, name="scan") as c, c.database(f"{MARKER}_db2") as conn:
        salt(conn, f"{MARKER}_db2")
        names = scalar(conn, "SELECT string_agg(relname, ' ') FROM pg_class")
        assert f"{MARKER}_table" in names
        for query in (
            "SELECT string_agg(amname, ' ') FROM pg_am",
            "SELECT string_agg(extname || ' ' || extversion, ' ') FROM pg_extension",
            "SELECT string_agg(schema_name || ' ' || table_name, ' ') FROM _timescaledb_catalog.hypertable",
            "SELECT string_agg(proc_schema || ' ' || proc_name, ' ') FROM timescaledb_information.jobs",
            "SELECT string_agg(srvname, ' ') FROM pg_foreign_server",
        ):
            assert MARKER in scalar(conn, query), query
        conn.execute(f"DROP OWNED BY {MARKER}_role")
        conn.execute(f"DROP ROLE {MARKER}_role")
