"""Who this database is, anonymously: random UUIDs made at CREATE EXTENSION."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from telemetry.db import Database


@dataclass(frozen=True)
class Identity:
    db_uuid: str
    exported_db_uuid: str
    installed_time: str  # ISO 8601 with offset, independent of DateStyle and TimeZone


def read_identity(db: Database) -> Identity:
    # Epoch seconds, not timestamptz text: the session's DateStyle and TimeZone
    # must not change what is sent.  The oldest lineage row is the original
    # installation (see sql/incremental/001-identity.sql).
    row = db.row(
        """
        SELECT i.db_uuid::text AS db_uuid,
               l.exported_db_uuid::text AS exported_db_uuid,
               pg_catalog.date_part('epoch', l.installed_time) AS installed_epoch
          FROM _telemetry.instance AS i,
               LATERAL (SELECT exported_db_uuid, installed_time
                          FROM _telemetry.lineage
                         ORDER BY installed_time, exported_db_uuid
                         LIMIT 1) AS l
        """
    )
    if row is None:
        raise RuntimeError("telemetry: identity rows are missing; recreate the extension")
    installed = datetime.fromtimestamp(row["installed_epoch"], tz=UTC)
    return Identity(row["db_uuid"], row["exported_db_uuid"], installed.isoformat())
