"""Who this database is, anonymously: random UUIDs made at CREATE EXTENSION."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from telemetry_extension.db import Database
from telemetry_extension.metrics.declaration import Context, Metric


@dataclass(frozen=True)
class Identity:
    db_uuid: str
    exported_db_uuid: str
    installed_time: str  # ISO 8601 with offset, independent of DateStyle and TimeZone


def copy_identity(copy_salt: str, database_oid: int) -> tuple[str, float]:
    """A template copy's own db_uuid (version 4) and share of the jitter.

    Derived rather than drawn, so that get_report() in the copy shows the
    db_uuid before the first tick writes it (job/copies.py), and every copy,
    having its own oid, gets its own.  The salt is never sent: the collector
    cannot tell which database a copy came from.
    """
    digest = hashlib.sha256(f"{copy_salt}/{database_oid}".encode()).digest()
    jitter_fraction = int.from_bytes(digest[16:24], "big") / 2.0**64
    return str(uuid.UUID(bytes=digest[:16], version=4)), jitter_fraction


def read_identity(db: Database) -> Identity:
    # Epoch seconds, not timestamptz text: the session's DateStyle and TimeZone
    # must not change what is sent.  The oldest lineage row is the original
    # installation (see sql/incremental/001-identity.sql).  In a template copy
    # that has not taken its own identity yet, the one it will take.
    row = db.row(
        """
        SELECT i.db_uuid::text AS db_uuid, i.database_oid <> d.oid AS copied, d.oid,
               i.copy_salt::text AS copy_salt,
               l.exported_db_uuid::text AS exported_db_uuid,
               pg_catalog.date_part('epoch', l.installed_time) AS installed_epoch
          FROM _telemetry.instance AS i,
               pg_catalog.pg_database AS d,
               LATERAL (SELECT exported_db_uuid, installed_time
                          FROM _telemetry.lineage
                         ORDER BY installed_time, exported_db_uuid
                         LIMIT 1) AS l
         WHERE d.datname = pg_catalog.current_database()
        """
    )
    if row is None:
        raise RuntimeError("telemetry: identity rows are missing; recreate the extension")
    db_uuid = copy_identity(row["copy_salt"], int(row["oid"]))[0] if row["copied"] else row["db_uuid"]
    installed = datetime.fromtimestamp(row["installed_epoch"], tz=UTC)
    return Identity(db_uuid, row["exported_db_uuid"], installed.isoformat())


def _identity(ctx: Context) -> Identity:
    return ctx.shared("identity", lambda: read_identity(ctx.db))  # type: ignore[no-any-return]


METRICS: tuple[Metric, ...] = (
    Metric(
        "db_uuid",
        "string",
        "Random version-4 UUID of this database, made at CREATE EXTENSION; new after a restore and in a template copy.",
        "_telemetry.instance",
        "26917841-2fc0-48fd-b096-ba19b3fda98f",
        lambda ctx: _identity(ctx).db_uuid,
    ),
    Metric(
        "exported_db_uuid",
        "string",
        "Random version-4 UUID made at the first CREATE EXTENSION; carried over by pg_dump and restore.",
        "_telemetry.lineage (oldest row)",
        "8dd4543c-f44e-43c9-a666-02d23bb09b90",
        lambda ctx: _identity(ctx).exported_db_uuid,
    ),
    Metric(
        "installed_time",
        "string",
        "When the extension was first created in this database's lineage, ISO 8601 with offset.",
        "_telemetry.lineage (oldest row)",
        "2026-04-17T14:56:59.427738+00:00",
        lambda ctx: _identity(ctx).installed_time,
    ),
)
