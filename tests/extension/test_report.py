"""The report's content: every key TimescaleDB's text defines, JSON types, identity rules."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from datetime import datetime
from typing import Any

import psycopg

from telemetry_extension.metrics.extensions import RELATED_EXTENSIONS
from tests.cluster import Cluster
from tests.helpers import one_row, report, scalar

TIMESCALEDB_TEXT_KEYS = {
    "db_uuid",
    "exported_db_uuid",
    "installed_time",
    "install_method",
    "os_name",
    "os_version",
    "os_release",
    "postgresql_version",
    "build_os_name",
    "build_os_version",
    "data_volume",
    "num_hypertables",
    "related_extensions",
}


def test_carries_every_key_of_timescaledb_s_text_with_json_types(db: psycopg.Connection[Any]) -> None:
    r = report(db)
    assert set(r) >= TIMESCALEDB_TEXT_KEYS
    for key in (
        "extension_version",
        "timescaledb_version",
        "report_format_version",
        "metrics_level",
        "metrics_level_source",
    ):
        assert key in r
    assert type(r["data_volume"]) is int and type(r["num_hypertables"]) is int
    assert type(r["report_format_version"]) is int
    assert set(r["related_extensions"]) == set(RELATED_EXTENSIONS)
    assert {"pg_prometheus", "postgis"} <= set(RELATED_EXTENSIONS)  # the two TimescaleDB's text names
    assert all(type(v) is bool for v in r["related_extensions"].values())
    assert r["install_method"] == "source"
    assert r["os_name"] == "Linux"
    assert r["os_release"] == os.uname().release


def test_values_match_the_database(db: psycopg.Connection[Any]) -> None:
    r = report(db)
    size, version_num = one_row(
        db, "SELECT pg_database_size(current_database()), current_setting('server_version_num')::int"
    )
    assert abs(r["data_volume"] - size) < 1024 * 1024
    assert r["postgresql_version"] == f"{version_num // 10000}.{version_num % 10000}"
    assert r["num_hypertables"] == 0 and r["timescaledb_version"] is None
    assert r["related_extensions"]["pg_stat_statements"] is False
    db.execute("CREATE EXTENSION pg_stat_statements")
    assert report(db)["related_extensions"]["pg_stat_statements"] is True


def test_uuids_are_random_v4_and_stable(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    first = report(db)
    for key in ("db_uuid", "exported_db_uuid"):
        assert uuid.UUID(first[key]).version == 4
    assert first["db_uuid"] != first["exported_db_uuid"]
    assert report(db)["db_uuid"] == first["db_uuid"]
    dbname = db.info.dbname
    cluster.restart()
    with cluster.connect(dbname) as again:
        after = report(again)
    for key in ("db_uuid", "exported_db_uuid", "installed_time"):
        assert after[key] == first[key]


def test_installed_time_is_iso8601_whatever_datestyle_and_timezone(db: psycopg.Connection[Any]) -> None:
    plain = report(db)["installed_time"]
    db.execute("SET DateStyle = 'SQL, DMY'")
    db.execute("SET TimeZone = 'Asia/Kolkata'")
    assert report(db)["installed_time"] == plain
    parsed = datetime.fromisoformat(plain)
    assert parsed.tzinfo is not None
    created = scalar(db, "SELECT extract(epoch FROM installed_time)::float8 FROM _telemetry.lineage")
    assert abs(parsed.timestamp() - created) < 1e-5
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", plain)


def _dump_and_restore(cluster: Cluster, source: str, target: str) -> str:
    bindir = cluster.tree.bindir
    conn = ["-h", str(cluster.socketdir), "-p", str(cluster.port), "-U", cluster.user]
    dump = subprocess.run([str(bindir / "pg_dump"), *conn, "-Fc", source], check=True, capture_output=True).stdout
    with cluster.connect() as admin:
        admin.execute(f'CREATE DATABASE "{target}"')
    restore = subprocess.run(
        [str(bindir / "pg_restore"), *conn, "--exit-on-error", "-d", target], input=dump, capture_output=True
    )
    assert restore.returncode == 0, restore.stderr.decode()
    return restore.stderr.decode()


def test_dump_and_restore_keep_lineage_and_make_a_new_db_uuid(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    original = report(db)
    try:
        stderr = _dump_and_restore(cluster, db.info.dbname, "restored1")
        assert "error" not in stderr.lower()
        with cluster.connect("restored1") as conn:
            restored = report(conn)
        assert restored["exported_db_uuid"] == original["exported_db_uuid"]
        assert restored["installed_time"] == original["installed_time"]
        assert restored["db_uuid"] != original["db_uuid"]
        # A dump of the restored database restores cleanly too, and still points at the original.
        _dump_and_restore(cluster, "restored1", "restored2")
        with cluster.connect("restored2") as conn:
            second = report(conn)
        assert second["exported_db_uuid"] == original["exported_db_uuid"]
        assert second["installed_time"] == original["installed_time"]
        assert second["db_uuid"] not in (original["db_uuid"], restored["db_uuid"])
    finally:
        with cluster.connect() as admin:
            admin.execute("DROP DATABASE IF EXISTS restored1 WITH (FORCE)")
            admin.execute("DROP DATABASE IF EXISTS restored2 WITH (FORCE)")
