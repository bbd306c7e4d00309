"""Whether anything calls the tick in this database, and the exact command when nothing does.

Evidence, in order: telemetry's background worker (registered where
telemetry is in shared_preload_libraries, its launcher running), an active
pg_cron entry in this database that runs the tick and whose latest run did not
fail (when it failed, its message and the fix are the answer), or a tick
seen lately (the plain-SQL tick records, at most once an hour, when it ran; a
scheduled send is an attempt with trigger 'job').  With
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
WORKER = "the background worker (telemetry launcher, every telemetry.tick_interval)"
CRON_FIX = (
    "put telemetry in shared_preload_libraries and restart the server: its background worker then calls the "
    "tick (then remove the pg_cron entry: SELECT cron.unschedule('telemetry')); or let pg_cron connect: "
    "cron.use_background_workers = on "
    "(restart), or cron.host set to the server's socket directory with a matching pg_hba.conf line"
)


@dataclass(frozen=True)
class Callers:
    tick_caller: str | None  # what calls the tick; None when nothing is known to
    tick_last_seen: str | None  # timestamptz
    tick_command: str | None  # when nothing calls it: what to run so that something does
    failing: str | None = None  # the caller that is set up but fails, and how

    def columns(self) -> dict[str, str | None]:
        """The telemetry_status columns."""
        return {
            "tick_caller": self.tick_caller,
            "tick_last_seen": self.tick_last_seen,
            "tick_command": self.tick_command,
        }


def find(db: Database) -> Callers:
    row = db.row(
        """SELECT _telemetry.worker_running() AS worker,
                  _telemetry.cron_entry_exists() AS cron_entry,
                  _telemetry.cron_last_failure() AS cron_failure,
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
    if row["worker"]:
        return Callers(WORKER, row["last_seen"], None)
    if row["cron_entry"] and row["cron_failure"] is None:
        return Callers("pg_cron job in this database", row["last_seen"], None)
    if row["cron_entry"]:
        failure = " ".join(str(row["cron_failure"]).split())
        failing = f"pg_cron's runs of the tick fail here ({failure})"
        return Callers(None, row["last_seen"], f"{failing}: {CRON_FIX}", failing)
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
