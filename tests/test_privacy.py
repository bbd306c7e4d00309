"""Nothing a user named may leave the database: a salted database, scanned report."""

from __future__ import annotations

import json
import socket

from tests.cluster import Cluster
from tests.helpers import report

MARKER = "zqxmarker"


def salt(conn, dbname: str) -> None:
    """A marker in every name, comment and setting value a user can choose."""
    m = MARKER
    for statement in (
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
    ):
        conn.execute(statement)


def test_marker_appears_nowhere_in_the_report(pg_tree) -> None:
    # The cluster's directory (data, socket, log paths) and cluster_name carry the marker too.
    c = Cluster(pg_tree, dir_name=f"{MARKER}-cluster",
                conf={"cluster_name": f"'{MARKER}_cluster'", f"{MARKER}.conf_setting": f"'{MARKER}'"}).start()
    dbname = f"{MARKER}_db"
    try:
        with c.database(dbname) as conn:
            salt(conn, dbname)
            # Seen by the superuser, and by a pg_monitor member whose own settings carry the marker.
            for user in (None, f"{MARKER}_role"):
                with c.connect(dbname, user=user, application_name=f"{MARKER}_client") as session:
                    text = json.dumps(report(session)).lower()
                    assert MARKER not in text
                    assert socket.gethostname().lower() not in text
                    assert str(c.base).lower() not in text
            conn.execute(f"DROP OWNED BY {MARKER}_role")
            conn.execute(f"DROP ROLE {MARKER}_role")
    finally:
        c.destroy()


def test_the_marker_scan_can_fail(pg_tree) -> None:
    """Guard against a vacuous scan: the salted names are really in the catalogs we read."""
    c = Cluster(pg_tree, name="scan").start()
    try:
        with c.database(f"{MARKER}_db2") as conn:
            salt(conn, f"{MARKER}_db2")
            names = conn.execute("SELECT string_agg(relname, ' ') FROM pg_class").fetchone()[0]
            assert f"{MARKER}_table" in names
            conn.execute(f"DROP OWNED BY {MARKER}_role")
            conn.execute(f"DROP ROLE {MARKER}_role")
    finally:
        c.destroy()
