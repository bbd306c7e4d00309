"""Whether anything calls the tick in this database, and the exact command when nothing does.

Evidence, in order: an active pg_cron entry in this database that runs the
tick, or a tick seen lately (the plain-SQL tick records, at most once an
hour, when it ran; a scheduled send is an attempt with trigger 'job').  With
neither, nothing will ever send: the command to run is given, for pg_cron
when the server loads it (in the database pg_cron lives in), else a line for
the crontab of the server's OS user.  Shown by telemetry_status and by the
NOTICE of CREATE EXTENSION.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import timedelta

from telemetry_extension.db import Database

# The tick runs every 15 minutes and is recorded at most once an hour.
SEEN_WITHIN = timedelta(hours=2)
EVERY_15_MINUTES = "*/15 * * * *"
TICK = "SELECT _telemetry.tick()"


@dataclass(frozen=True)
class Callers:
    tick_caller: str | None  # what calls the tick; None when nothing is known to
    tick_last_seen: str | None  # timestamptz
    tick_command: str | None  # when nothing calls it: what to run so that something does


def find(db: Database) -> Callers:
    row = db.row(
        """SELECT _telemetry.cron_entry_exists() AS cron_entry,
                  seen.at AS last_seen,
                  seen.at > pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $1) AS seen_lately,
                  pg_catalog.current_database() AS database,
                  pg_catalog.quote_literal(pg_catalog.current_database()) AS database_literal,
                  pg_catalog.quote_literal('telemetry-' || pg_catalog.current_database()) AS job_literal,
                  pg_catalog.current_setting('cron.database_name', true) AS cron_database,
                  pg_catalog.current_setting('shared_preload_libraries') ~ '(^|[ ,])pg_cron($|[ ,])' AS cron_loaded
             FROM (SELECT GREATEST(s.last_tick,
                                   (SELECT max(a.started_at) FROM _telemetry.attempts AS a
                                     WHERE a.trigger = 'job')) AS at
                     FROM _telemetry.schedule AS s) AS seen""",
        [SEEN_WITHIN.total_seconds()],
        ["float8"],
    )
    assert row is not None
    if row["cron_entry"]:
        return Callers("pg_cron job in this database", row["last_seen"], None)
    if row["seen_lately"]:
        return Callers("a scheduler: the tick ran lately", row["last_seen"], None)
    if row["cron_loaded"] and row["cron_database"]:
        if row["cron_database"] == row["database"]:
            command = (
                "CREATE EXTENSION IF NOT EXISTS pg_cron; "
                f"SELECT cron.schedule('telemetry', '{EVERY_15_MINUTES}', '{TICK}');"
            )
        else:
            command = (
                f"in database {row['cron_database']}: SELECT cron.schedule_in_database({row['job_literal']}, "
                f"'{EVERY_15_MINUTES}', '{TICK}', {row['database_literal']});"
            )
    else:
        command = (
            "in the crontab of the server's OS user: "
            f"{EVERY_15_MINUTES} psql -d {shlex.quote(row['database'])} -XAtqc '{TICK}'"
        )
    return Callers(None, row["last_seen"], command)
