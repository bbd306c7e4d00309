"""Every key of the report, declared once.

The report (report.py), the field dictionary (docs/report-fields.md, written by
fields_doc.py) and the tests all read METRICS.  A metric's value is numbers,
booleans, or strings from a fixed vocabulary: never a name, path or setting
value that a user typed.  Each metric runs on its own (metrics_run.py): a
subtransaction, a deadline, an error marker when it fails.  The seed's keys
come first and keep their meaning; the deeper metrics live in metrics_*.py.
"""

from __future__ import annotations

import re

from telemetry import build_info, protocol
from telemetry.metrics_base import Context, Field, JSONValue, Metric, public_version
from telemetry.metrics_catalog import ACCESS_METHODS_FIELDS, RELATIONS_FIELDS, access_methods, relations
from telemetry.metrics_extensions import EXTENSIONS_FIELDS, extensions
from telemetry.metrics_server import (
    FEATURES_FIELDS,
    REPLICATION_FIELDS,
    num_databases,
    replication,
    server_features,
    uptime_days,
)
from telemetry.metrics_timescaledb import TIMESCALEDB_FIELDS, num_hypertables, timescaledb
from telemetry.metrics_vendor import vendor_metrics

__all__ = [
    "METRICS", "RELATED_EXTENSIONS", "REPORT_FORMAT_VERSION", "UNAME_CHARS", "UNAME_MAX_CHARS",
    "Context", "Field", "JSONValue", "Metric", "public_version",
]

REPORT_FORMAT_VERSION = 1

# Well-known public extensions whose presence the report tells (true/false).
RELATED_EXTENSIONS = (
    "postgis",
    "timescaledb",
    "pg_prometheus",
    "promscale",
    "timescaledb_toolkit",
    "vector",
    "pg_cron",
    "pg_stat_statements",
)


def postgresql_version(ctx: Context) -> str:
    # server_version_num, not server_version: a packager's or builder's
    # free-text suffix must not leave the database.
    num = int(ctx.db.value("SELECT pg_catalog.current_setting('server_version_num')::int"))
    return f"{num // 10000}.{num % 10000}"


def data_volume(ctx: Context) -> int:
    return int(ctx.db.value("SELECT pg_catalog.pg_database_size(pg_catalog.current_database())"))


# What uname text may keep (a regex character class body) and how much of it.
UNAME_CHARS = "0-9A-Za-z .:_()#+~-"
UNAME_MAX_CHARS = 128
_UNAME_UNSAFE = re.compile(f"[^{UNAME_CHARS}]")


def _uname_text(text: str) -> str:
    return _UNAME_UNSAFE.sub("", text)[:UNAME_MAX_CHARS]


NO_SQL = None  # timeout_ms of a metric that runs no SQL

_SEED: tuple[Metric, ...] = (
    Metric("report_format_version", "integer", "Version of this report's format.",
           "constant of the extension", REPORT_FORMAT_VERSION, lambda ctx: REPORT_FORMAT_VERSION,
           timeout_ms=NO_SQL),
    Metric("db_uuid", "string",
           "Random version-4 UUID of this database, made at CREATE EXTENSION; new after a restore.",
           "_telemetry.instance", "26917841-2fc0-48fd-b096-ba19b3fda98f", lambda ctx: ctx.identity.db_uuid),
    Metric("exported_db_uuid", "string",
           "Random version-4 UUID made at the first CREATE EXTENSION; carried over by pg_dump and restore.",
           "_telemetry.lineage (oldest row)", "8dd4543c-f44e-43c9-a666-02d23bb09b90",
           lambda ctx: ctx.identity.exported_db_uuid),
    Metric("installed_time", "string",
           "When the extension was first created in this database's lineage, ISO 8601 with offset.",
           "_telemetry.lineage (oldest row)", "2026-04-17T14:56:59.427738+00:00",
           lambda ctx: ctx.identity.installed_time),
    Metric("install_method", "string",
           f"How the extension was installed: one of {', '.join(build_info.INSTALL_METHODS)}.",
           "make INSTALL_METHOD=... at build time", "source", lambda ctx: build_info.INSTALL_METHOD,
           timeout_ms=NO_SQL),
    Metric("os_name", "string", "Operating system of the server.", "uname -s of the server", "Linux",
           lambda ctx: _uname_text(ctx.uname.sysname), timeout_ms=NO_SQL),
    Metric("os_version", "string", "Kernel build of the server.", "uname -v of the server",
           "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)", lambda ctx: _uname_text(ctx.uname.version),
           timeout_ms=NO_SQL),
    Metric("os_release", "string", "Kernel release of the server.", "uname -r of the server", "6.1.0-28-amd64",
           lambda ctx: _uname_text(ctx.uname.release), timeout_ms=NO_SQL),
    Metric("postgresql_version", "string", "PostgreSQL major.minor version.", "server_version_num", "15.20",
           postgresql_version),
    Metric("extension_version", "string", "Version of this telemetry extension.", "telemetry.control",
           "0.1.0", lambda ctx: build_info.VERSION, timeout_ms=NO_SQL),
    Metric("timescaledb_version", "string or null", "TimescaleDB version when it is installed in this database.",
           "pg_extension", "2.17.2", lambda ctx: public_version(ctx.extensions.get("timescaledb"))),
    Metric("build_os_name", "string", "Operating system the extension was built on.",
           "uname -s at build time", "Linux", lambda ctx: _uname_text(build_info.BUILD_OS_NAME), timeout_ms=NO_SQL),
    Metric("build_os_version", "string", "Kernel release the extension was built on.",
           "uname -r at build time", "6.1.0-28-amd64", lambda ctx: _uname_text(build_info.BUILD_OS_VERSION),
           timeout_ms=NO_SQL),
    Metric("data_volume", "integer", "Size of this database in bytes.",
           "pg_database_size(current_database())", 65982148, data_volume),
    Metric("num_hypertables", "integer", "Number of TimescaleDB hypertables; 0 without TimescaleDB.",
           "timescaledb_information.hypertables", 3, num_hypertables),
    Metric("related_extensions", "object",
           f"For each of {', '.join(RELATED_EXTENSIONS)}: whether it is installed in this database (true/false).",
           "pg_extension", {"postgis": True, "timescaledb": False},
           lambda ctx: {name: name in ctx.extensions for name in RELATED_EXTENSIONS},
           fields=(Field("*", "boolean", f"* is one of {', '.join(RELATED_EXTENSIONS)}."),)),
    Metric("metrics_level", "string", "Effective telemetry.metrics_level: off or basic.",
           "telemetry.metrics_level, DISABLE_TELEMETRY", "basic", lambda ctx: ctx.level.level, timeout_ms=NO_SQL),
    Metric("metrics_level_source", "string",
           "Where the level came from: PostgreSQL's pg_settings.source vocabulary, 'alter system', or 'environment'.",
           "pg_settings.source, DISABLE_TELEMETRY", "default", lambda ctx: ctx.level.source, timeout_ms=NO_SQL),
)

_DEEPER: tuple[Metric, ...] = (
    Metric("relations", "object",
           "User relations by kind: counts, estimated rows, heap, TOAST and index bytes "
           "(rounded, see docs/metrics.md).",
           "pg_class, pg_index (relpages, reltuples) via _telemetry.relation_stats",
           {"tables": {"num_relations": 12, "num_reltuples": 340000, "heap_size": 41000000, "toast_size": 8192,
                       "indexes_size": 9800000}, "views": {"num_relations": 3}},
           relations, fields=RELATIONS_FIELDS),
    Metric("access_methods", "object",
           "Access methods used by user relations and their indexes: how many, how many pages (rounded).",
           "pg_class.relam, pg_am via _telemetry.relation_stats",
           {"heap": {"num_relations": 12, "pages": 5000}, "btree": {"num_relations": 15, "pages": 1200}},
           access_methods, fields=ACCESS_METHODS_FIELDS),
    Metric("timescaledb", "object",
           "TimescaleDB hypertables, chunks, compression, continuous aggregates and policies; zeros without it.",
           "timescaledb_information.*, _timescaledb_catalog.*, _timescaledb_config.*",
           {"hypertables": {"num_hypertables": 3, "num_chunks": 120}, "policies": {"compression": 2}},
           timescaledb, fields=TIMESCALEDB_FIELDS),
    Metric("replication", "object", "Whether this server is a standby, and how many WAL senders run.",
           "pg_is_in_recovery(), pg_stat_get_wal_senders()", {"is_standby": False, "num_wal_senders": 1},
           replication, fields=REPLICATION_FIELDS),
    Metric("num_databases", "integer", "Databases in the cluster, templates not counted.", "pg_database", 4,
           num_databases),
    Metric("uptime_days", "integer", "Whole days since the server started.", "pg_postmaster_start_time()", 12,
           uptime_days),
    Metric("server_features", "object", "Server features switched on, as booleans (never a setting's value).",
           "current_setting() of ssl, wal_level, archive_mode, shared_preload_libraries, data_checksums",
           {"ssl": True, "wal_level_logical": False, "archive_mode": False, "pg_stat_statements_loaded": True,
            "data_checksums": False},
           server_features, fields=FEATURES_FIELDS),
    Metric("extensions", "object",
           "Versions of installed extensions on a public allowlist; the others only counted.",
           "pg_extension", {"versions": {"plpgsql": "1.0", "postgis": "3.4.2"}, "num_other": 1},
           extensions, fields=EXTENSIONS_FIELDS),
    Metric("vendor_metrics", "object",
           "Metrics other extensions registered with register_metric(): key and summary in the "
           "telemetry_metrics view; each a number, or an object of numbers.",
           "_telemetry.vendor_metrics (registered queries)", {"myext_widgets": 42},
           vendor_metrics, timeout_ms=NO_SQL,
           fields=(Field("*", "number, null or object",
                         "A registered metric's value: its key and summary are in the telemetry_metrics view."),)),
)

METRICS: tuple[Metric, ...] = tuple(
    Metric(m.key, m.json_type, m.summary, m.source, m.example, m.collect, m.level, m.timeout_ms,
           m.key in protocol.REQUIRED_REPORT_FIELDS, m.fields)
    for m in (*_SEED, *_DEEPER)
)
