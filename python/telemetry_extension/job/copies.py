"""A template copy (CREATE DATABASE ... TEMPLATE) becomes a database of its own.

The identity row records the oid of its database (pg_database); a copy
carries the row into a database with another oid.  At the first write
opportunity, a tick or a send (after its network step, so that no row is
locked while sending), the copy takes the identity get_report() already
shows for it (metrics/identity.py derives it), a schedule of its own
(grace from now, a fresh share of the jitter) and an empty audit trail, as a
restored database would.  It keeps what a restore keeps: the lineage
(exported_db_uuid, installed_time), the options, the metrics switched off and
the registered metrics.  The newest release it was told is forgotten: this
database has not asked yet.
"""

from __future__ import annotations

from telemetry_extension.db import Database, Row
from telemetry_extension.job.schedule import plan_first_report
from telemetry_extension.metrics.identity import copy_identity


def _read(db: Database) -> Row | None:
    return db.row(
        """SELECT i.database_oid <> d.oid AS copied, d.oid, i.copy_salt::text AS copy_salt,
                  pg_catalog.current_setting('transaction_read_only') = 'on' AS read_only
             FROM _telemetry.instance AS i, pg_catalog.pg_database AS d
            WHERE d.datname = pg_catalog.current_database()"""
    )


def is_copy(db: Database) -> bool:
    """Whether this database is a copy that has not taken its own identity yet (reads only)."""
    row = _read(db)
    return row is not None and bool(row["copied"])


def adopt_own_identity(db: Database) -> bool:
    """True when this database was a copy and now has its own identity."""
    row = _read(db)
    if row is None or not row["copied"] or row["read_only"]:
        return False
    db_uuid, jitter_fraction = copy_identity(row["copy_salt"], int(row["oid"]))
    # The condition makes a concurrent tick that did it first win: this one then changes nothing.
    changed = db.rows(
        """UPDATE _telemetry.instance
              SET db_uuid = $1::uuid, database_oid = $2, copy_salt = pg_catalog.gen_random_uuid(),
                  created_at = pg_catalog.now()
            WHERE database_oid <> $2
        RETURNING true AS changed""",
        [db_uuid, row["oid"]],
        ["text", "oid"],
    )
    if not changed:
        return False
    db.rows(
        """UPDATE _telemetry.schedule
              SET next_due = NULL, failures = 0, jitter_fraction = $1,
                  last_attempt = NULL, last_success = NULL, last_tick = NULL""",
        [jitter_fraction],
        ["float8"],
    )
    db.rows("DELETE FROM _telemetry.attempts")
    db.rows("DELETE FROM _telemetry.latest_version")
    plan_first_report(db)
    db.plpy.log(
        "telemetry: this database is a copy of another (CREATE DATABASE ... TEMPLATE); "
        "it now has its own db_uuid, schedule and an empty audit trail"
    )
    return True
