"""Every key of the report, declared once.

The report (report.py), the field dictionary (docs/report-fields.md, written by
fields_doc.py) and the tests all read METRICS.  A metric's value is numbers,
booleans, or strings from a fixed vocabulary: never a name, path or setting
value that a user typed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from packaging.version import InvalidVersion, Version

from telemetry import build_info
from telemetry.db import Database
from telemetry.identity import Identity, read_identity
from telemetry.settings import Level

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

JSONValue = Any


class Context:
    """What several metrics share, read at most once per report."""

    def __init__(self, db: Database, level: Level) -> None:
        self.db = db
        self.level = level

    @cached_property
    def identity(self) -> Identity:
        return read_identity(self.db)

    @cached_property
    def extensions(self) -> dict[str, str]:
        rows = self.db.rows("SELECT extname::text AS name, extversion AS version FROM pg_catalog.pg_extension")
        return {row["name"]: row["version"] for row in rows}

    @cached_property
    def uname(self) -> os.uname_result:
        return os.uname()


@dataclass(frozen=True)
class Metric:
    key: str
    json_type: str  # as written in the field dictionary: string, integer, boolean, object, "string or null"
    summary: str
    source: str
    example: JSONValue
    collect: Callable[[Context], JSONValue]
    level: str = "basic"


def public_version(text: str | None) -> str | None:
    """A version string as vocabulary: PEP 440 public part only, else None.

    Extension versions come from control files; a local build could put
    anything there, so only the numeric public version is sent.
    """
    if text is None:
        return None
    try:
        return Version(text).public
    except InvalidVersion:
        return None


def postgresql_version(ctx: Context) -> str:
    # server_version_num, not server_version: a packager's or builder's
    # free-text suffix must not leave the database.
    num = int(ctx.db.value("SELECT pg_catalog.current_setting('server_version_num')::int"))
    return f"{num // 10000}.{num % 10000}"


def num_hypertables(ctx: Context) -> int:
    if "timescaledb" not in ctx.extensions:
        return 0
    return int(ctx.db.value("SELECT count(*) FROM timescaledb_information.hypertables"))


def data_volume(ctx: Context) -> int:
    return int(ctx.db.value("SELECT pg_catalog.pg_database_size(pg_catalog.current_database())"))


_UNAME_SAFE = re.compile(r"[^0-9A-Za-z .:_()#+~-]")


def _uname_text(text: str) -> str:
    return _UNAME_SAFE.sub("", text)[:128]


METRICS: tuple[Metric, ...] = (
    Metric("report_format_version", "integer", "Version of this report's format.",
           "constant of the extension", REPORT_FORMAT_VERSION, lambda ctx: REPORT_FORMAT_VERSION),
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
           "make INSTALL_METHOD=... at build time", "source", lambda ctx: build_info.INSTALL_METHOD),
    Metric("os_name", "string", "Operating system of the server.", "uname -s of the server", "Linux",
           lambda ctx: _uname_text(ctx.uname.sysname)),
    Metric("os_version", "string", "Kernel build of the server.", "uname -v of the server",
           "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)", lambda ctx: _uname_text(ctx.uname.version)),
    Metric("os_release", "string", "Kernel release of the server.", "uname -r of the server", "6.1.0-28-amd64",
           lambda ctx: _uname_text(ctx.uname.release)),
    Metric("postgresql_version", "string", "PostgreSQL major.minor version.", "server_version_num", "15.20",
           postgresql_version),
    Metric("extension_version", "string", "Version of this telemetry extension.", "telemetry.control",
           "0.1.0", lambda ctx: build_info.VERSION),
    Metric("timescaledb_version", "string or null", "TimescaleDB version when it is installed in this database.",
           "pg_extension", "2.17.2", lambda ctx: public_version(ctx.extensions.get("timescaledb"))),
    Metric("build_os_name", "string", "Operating system the extension was built on.",
           "uname -s at build time", "Linux", lambda ctx: _uname_text(build_info.BUILD_OS_NAME)),
    Metric("build_os_version", "string", "Kernel release the extension was built on.",
           "uname -r at build time", "6.1.0-28-amd64", lambda ctx: _uname_text(build_info.BUILD_OS_VERSION)),
    Metric("data_volume", "integer", "Size of this database in bytes.",
           "pg_database_size(current_database())", 65982148, data_volume),
    Metric("num_hypertables", "integer", "Number of TimescaleDB hypertables; 0 without TimescaleDB.",
           "timescaledb_information.hypertables", 3, num_hypertables),
    Metric("related_extensions", "object",
           f"For each of {', '.join(RELATED_EXTENSIONS)}: whether it is installed in this database (true/false).",
           "pg_extension", {"postgis": True, "timescaledb": False},
           lambda ctx: {name: name in ctx.extensions for name in RELATED_EXTENSIONS}),
    Metric("metrics_level", "string", "Effective telemetry.metrics_level: off or basic.",
           "telemetry.metrics_level, DISABLE_TELEMETRY", "basic", lambda ctx: ctx.level.level),
    Metric("metrics_level_source", "string",
           "Where the level came from: PostgreSQL's pg_settings.source vocabulary, 'alter system', or 'environment'.",
           "pg_settings.source, DISABLE_TELEMETRY", "default", lambda ctx: ctx.level.source),
)
