"""The deeper report: relations by kind, access methods, server facts, extensions, TimescaleDB."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from telemetry_extension.metrics.values import approx
from tests import fake_extensions
from tests.cluster import Cluster
from tests.helpers import EXTENSION_VERSION, execute_each, report
from tests.pgtree import PgTree


@pytest.fixture(scope="module")
def fakes(pg_tree: PgTree) -> None:
    """The stand-in timescaledb (NOT TimescaleDB: see tests/fake_extensions) and an in-house extension."""
    fake_extensions.install(pg_tree)


def one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_approx_keeps_two_significant_digits() -> None:
    assert [approx(n) for n in (0, 7, 99, 100, 101, 12_345, 987_654_321, 1.6)] == [
        0,
        7,
        99,
        100,
        100,
        12_000,
        990_000_000,
        2,
    ]
    assert approx(None) == 0 and approx(-5) == 0


def test_relations_by_kind(db: psycopg.Connection[Any]) -> None:
    execute_each(
        db,
        "CREATE SCHEMA app",
        "CREATE TABLE app.t1 (id int PRIMARY KEY, body text)",
        "ALTER TABLE app.t1 ALTER body SET STORAGE EXTERNAL",
        "CREATE INDEX ON app.t1 (left(body, 10))",
        "INSERT INTO app.t1 SELECT g, repeat(md5(g::text), 100) FROM generate_series(1, 300) g",
        "CREATE TABLE app.t2 (id int PRIMARY KEY)",
        "INSERT INTO app.t2 SELECT generate_series(1, 5000)",
        "CREATE TABLE app.parted (id int, body text) PARTITION BY RANGE (id)",
        "CREATE TABLE app.p1 PARTITION OF app.parted FOR VALUES FROM (0) TO (1000)",
        "CREATE TABLE app.p2 PARTITION OF app.parted FOR VALUES FROM (1000) TO (2000) PARTITION BY RANGE (id)",
        "CREATE TABLE app.p2a PARTITION OF app.p2 FOR VALUES FROM (1000) TO (1500)",
        "CREATE INDEX ON app.parted (id)",
        "INSERT INTO app.parted SELECT g, 'x' FROM generate_series(0, 1499) g",
        "CREATE VIEW app.v AS SELECT * FROM app.t1",
        "CREATE MATERIALIZED VIEW app.mv AS SELECT * FROM app.t2",
        "CREATE INDEX ON app.mv (id)",
        "CREATE FOREIGN DATA WRAPPER dummy_fdw",
        "CREATE SERVER dummy_server FOREIGN DATA WRAPPER dummy_fdw",
        "CREATE FOREIGN TABLE app.ft (id int) SERVER dummy_server",
        # Not user relations: an extension's objects in a user schema, temporary tables.
        "CREATE EXTENSION pg_stat_statements SCHEMA app",
        "CREATE TEMPORARY TABLE scratch (id int)",
        "VACUUM ANALYZE",
    )
    r = report(db)["relations"]
    assert r["tables"]["num_relations"] == 2
    assert r["partitioned_tables"]["num_relations"] == 2  # parted and p2
    assert r["partitioned_tables"]["num_child_tables"] == 3  # p1, p2, p2a
    assert r["views"] == {"num_relations": 1}
    assert r["foreign_tables"] == {"num_relations": 1}
    assert r["materialized_views"]["num_relations"] == 1

    def pages(where: str) -> int:
        return int(one(db, f"SELECT coalesce(sum(relpages), 0) FROM pg_class WHERE {where}")) * 8192

    tables = "oid IN ('app.t1'::regclass, 'app.t2'::regclass)"
    expected = {
        "num_reltuples": approx(one(db, f"SELECT sum(reltuples) FROM pg_class WHERE {tables}")),
        "heap_size": approx(pages(tables)),
        "toast_size": approx(
            pages(f"oid IN (SELECT reltoastrelid FROM pg_class WHERE {tables})")
            + pages(f"""oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN
                                       (SELECT reltoastrelid FROM pg_class WHERE {tables}))""")
        ),
        "indexes_size": approx(
            pages(
                f"oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM pg_class WHERE {tables}))"
            )
        ),
    }
    assert {k: r["tables"][k] for k in expected} == expected
    assert r["tables"]["num_reltuples"] == 5300
    assert r["tables"]["toast_size"] > 0 and r["tables"]["indexes_size"] > 0
    leaves = "oid IN ('app.p1'::regclass, 'app.p2a'::regclass)"
    assert r["partitioned_tables"]["heap_size"] == approx(pages(leaves)) > 0
    assert r["partitioned_tables"]["num_reltuples"] == 1500
    assert r["partitioned_tables"]["indexes_size"] > 0
    assert r["materialized_views"]["num_reltuples"] == 5000
    assert r["materialized_views"]["indexes_size"] == approx(
        pages("oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'app.mv'::regclass)")
    )


def test_system_and_extension_relations_are_not_counted(db: psycopg.Connection[Any]) -> None:
    r = report(db)["relations"]
    assert all(kind["num_relations"] == 0 for kind in r.values()), r
    assert report(db)["access_methods"] == {}


def test_access_methods(db: psycopg.Connection[Any]) -> None:
    execute_each(
        db,
        "CREATE TABLE t (id int, body text, at timestamptz)",
        "INSERT INTO t SELECT g, md5(g::text), now() FROM generate_series(1, 2000) g",
        "CREATE INDEX ON t (id)",
        "CREATE INDEX ON t USING hash (body)",
        "CREATE INDEX ON t USING brin (at)",
        "CREATE ACCESS METHOD house_am TYPE TABLE HANDLER heap_tableam_handler",
        "CREATE TABLE h (id int) USING house_am",
        "VACUUM ANALYZE t",
    )
    ams = report(db)["access_methods"]
    assert set(ams) == {"heap", "btree", "hash", "brin", "other"}
    assert ams["heap"]["num_relations"] == 1 and ams["other"] == {"num_relations": 1, "pages": 0}
    assert ams["btree"]["pages"] == one(db, "SELECT relpages FROM pg_class WHERE relname = 't_id_idx'")
    assert ams["hash"]["num_relations"] == ams["brin"]["num_relations"] == 1
    assert ams["heap"]["pages"] == one(db, "SELECT relpages FROM pg_class WHERE relname = 't'") > 0


def test_server_facts_on_the_shared_cluster(db: psycopg.Connection[Any]) -> None:
    r = report(db)
    assert r["replication"] == {"is_standby": False, "num_wal_senders": 0}
    assert r["num_databases"] == one(db, "SELECT count(*) FROM pg_database WHERE NOT datistemplate") >= 2
    assert r["uptime_days"] == 0
    assert r["server_features"] == {
        "ssl": False,
        "wal_level_logical": False,
        "archive_mode": False,
        "pg_stat_statements_loaded": False,
        "data_checksums": False,
    }


def test_server_features_switched_on(pg_tree: PgTree) -> None:
    with (
        Cluster(
            pg_tree,
            name="features",
            conf={
                "shared_preload_libraries": "'telemetry,pg_stat_statements'",
                "wal_level": "logical",
                "archive_mode": "on",
                "archive_command": "'/bin/true'",
            },
        ) as c,
        c.database("features") as conn,
    ):
        assert report(conn)["server_features"] == {
            "ssl": False,
            "wal_level_logical": True,
            "archive_mode": True,
            "pg_stat_statements_loaded": True,
            "data_checksums": False,
        }


def test_extensions_on_the_allowlist_are_named_the_others_counted(db: psycopg.Connection[Any], fakes: None) -> None:
    db.execute("CREATE EXTENSION pg_trgm")
    db.execute("CREATE EXTENSION zqxmarker_ext")
    ext = report(db)["extensions"]
    assert ext["versions"] == {
        "pg_trgm": one(db, "SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'"),
        "plpgsql": "1.0",
        "plpython3u": "1.0",
        "telemetry": EXTENSION_VERSION,
    }
    assert ext["num_other"] == 1


def test_timescaledb_block_is_zero_without_timescaledb(db: psycopg.Connection[Any]) -> None:
    r = report(db)
    ts = r["timescaledb"]
    assert set(ts) == {"hypertables", "compression", "continuous_aggregates", "policies"}
    assert all(value == 0 for part in ts.values() for value in part.values())
    assert r["num_hypertables"] == 0


def _hypertables(db: psycopg.Connection[Any]) -> None:
    execute_each(
        db,
        "CREATE EXTENSION timescaledb",
        "CREATE TABLE metrics (at timestamptz NOT NULL, value float8, note text)",
        "CREATE INDEX ON metrics (at)",
        "SELECT _timescaledb_functions.fake_hypertable('metrics', 3, compress => true)",
        "CREATE TABLE events (at timestamptz NOT NULL)",
        "SELECT _timescaledb_functions.fake_hypertable('events', 2)",
        "INSERT INTO _timescaledb_internal._hyper_1_1_chunk SELECT now(), g, 'x' FROM generate_series(1, 500) g",
        "INSERT INTO _timescaledb_catalog.continuous_agg VALUES (3, 'public', 'metrics_hourly', false),"
        " (4, 'public', 'metrics_daily', true)",
        "INSERT INTO _timescaledb_config.bgw_job VALUES"
        " (1000, 'Compression Policy [1000]', '_timescaledb_functions', 'policy_compression', 1),"
        " (1001, 'Retention Policy [1001]', '_timescaledb_functions', 'policy_retention', 1),"
        " (1002, 'Refresh Continuous Aggregate Policy [1002]', '_timescaledb_functions',"
        "  'policy_refresh_continuous_aggregate', 3),"
        " (1003, 'User-Defined Action [1003]', 'public', 'my_job', NULL)",
        "VACUUM ANALYZE",
    )


def test_timescaledb_block_from_its_catalog(db: psycopg.Connection[Any], fakes: None) -> None:
    """Against the stand-in catalog (NOT TimescaleDB: tests/fake_extensions/timescaledb--2.17.2.sql)."""
    _hypertables(db)
    r = report(db)
    ts = r["timescaledb"]
    assert r["timescaledb_version"] == "2.17.2" and r["related_extensions"]["timescaledb"] is True
    assert ts["hypertables"]["num_hypertables"] == r["num_hypertables"] == 2  # the internal one is not counted
    assert ts["hypertables"]["num_compressed_hypertables"] == 1
    assert ts["hypertables"]["num_chunks"] == 5
    assert ts["hypertables"]["num_reltuples"] == 500
    chunk_pages = one(
        db,
        "SELECT sum(relpages) FROM pg_class"
        " WHERE relnamespace = '_timescaledb_internal'::regnamespace AND relkind = 'r'",
    )
    assert ts["hypertables"]["heap_size"] == approx(chunk_pages * 8192) > 0
    assert ts["compression"] == {
        "num_compressed_chunks": 1,
        "uncompressed_heap_size": 82000,
        "uncompressed_toast_size": 8200,
        "uncompressed_index_size": 16000,
        "compressed_heap_size": 16000,
        "compressed_toast_size": 0,
        "compressed_index_size": 8200,
        "uncompressed_row_count": 1000,
        "compressed_row_count": 10,
    }
    assert ts["continuous_aggregates"] == {"num_continuous_aggregates": 2, "num_realtime": 1}
    assert ts["policies"] == {
        "compression": 1,
        "retention": 1,
        "reorder": 0,
        "continuous_aggregate_refresh": 1,
        "user_defined": 1,
    }
    # Hypertables are user tables; their chunks live in TimescaleDB's own schema and are not.
    assert r["relations"]["tables"]["num_relations"] == 2


def test_timescaledb_catalog_differences_are_tolerated(db: psycopg.Connection[Any], fakes: None) -> None:
    """A part this version cannot answer is null; an older layout is read where it exists."""
    _hypertables(db)
    db.execute("ALTER EXTENSION timescaledb DROP VIEW timescaledb_information.jobs")
    db.execute("DROP VIEW timescaledb_information.jobs")
    db.execute("ALTER TABLE _timescaledb_catalog.compression_chunk_size DROP COLUMN numrows_pre_compression")
    db.execute("ALTER EXTENSION timescaledb DROP VIEW timescaledb_information.continuous_aggregates")
    db.execute("DROP VIEW timescaledb_information.continuous_aggregates")
    db.execute(
        "CREATE VIEW timescaledb_information.continuous_aggregates AS"
        " SELECT user_view_schema AS view_schema FROM _timescaledb_catalog.continuous_agg"
    )
    ts = report(db)["timescaledb"]
    assert ts["policies"] == dict.fromkeys(ts["policies"])  # neither 2.x jobs nor 1.x bgw_job.job_type: null
    assert ts["compression"]["uncompressed_row_count"] is None
    assert ts["compression"]["num_compressed_chunks"] == 1 and ts["compression"]["compressed_heap_size"] == 16000
    assert ts["continuous_aggregates"] == {"num_continuous_aggregates": 2, "num_realtime": None}
    assert ts["hypertables"]["num_hypertables"] == 2
