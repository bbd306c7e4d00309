"""The roll-up: incremental runs give exactly what counting the stored reports gives."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from typing import Any

import psycopg

from telemetry_collector.fleet import rollup
from tests.collector.fleet_helpers import at, roll_up, store, today
from tests.collector.helpers import run_cli

TABLES = {
    "collector.rollup_daily": "databases",
    "collector.rollup_latest": "databases",
    "collector.rollup_counters": "value",
    "collector.rollup_databases": None,
    "collector.rollup_exports": None,
}


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every roll-up row (rows that net to zero say nothing and are left out)."""
    out = {}
    for table, count in TABLES.items():
        where = f"WHERE {count} <> 0" if count else ""
        out[table] = sorted(conn.execute(f"SELECT * FROM {table} {where}").fetchall(), key=repr)
    return out


def random_fleet(conn: psycopg.Connection[Any], first: dt.date, days: int, rng: random.Random) -> list[dt.datetime]:
    """About 40 databases over `days` days: starting, upgrading, going quiet, some reporting
    twice a day, some restored from another's dump; stored in time order, returned sorted."""
    planned: list[tuple[dt.datetime, dict[str, Any]]] = []
    exported: list[str] = []
    for _ in range(40):
        db = str(uuid.uuid4())
        dump = rng.choice(exported) if exported and rng.random() < 0.15 else str(uuid.uuid4())
        exported.append(dump)
        start = rng.randrange(days)
        stop = rng.choice([days, days, rng.randrange(start, days) + 1])
        upgrade = rng.randrange(days + 10)
        for day in range(start, stop):
            if rng.random() > 0.6:
                continue
            for repeat in range(rng.choice([1, 1, 1, 2])):
                version = "0.10.0" if day > upgrade or (day == upgrade and repeat) else "0.9.0"
                fields = {
                    "db_uuid": db,
                    "exported_db_uuid": dump,
                    "extension_version": version,
                    "postgresql_version": rng.choice(["15.20", "16.4", "17.5"]),
                    "os_name": rng.choice(["Linux", "Linux", "FreeBSD"]),
                }
                hour = rng.uniform(0, 11.9) + 12 * repeat
                planned.append((at(first + dt.timedelta(days=day), hour), fields))
    planned.sort(key=lambda p: p[0])
    for received_at, fields in planned:
        store(conn, received_at, **fields)
    return [p[0] for p in planned]


def expected(conn: psycopg.Connection[Any], day: dt.date) -> dict[str, Any]:
    """What the views must say about `day`, counted from the reports themselves."""
    row = conn.execute(
        """WITH r AS (SELECT db_uuid, (received_at AT TIME ZONE 'UTC')::date AS day FROM collector.reports
                       WHERE (received_at AT TIME ZONE 'UTC')::date <= %(d)s)
           SELECT count(DISTINCT db_uuid) FILTER (WHERE day = %(d)s),
                  count(DISTINCT db_uuid) FILTER (WHERE day > %(d)s - 7),
                  count(DISTINCT db_uuid) FILTER (WHERE day > %(d)s - 30),
                  (SELECT count(*) FROM (SELECT db_uuid FROM r GROUP BY 1 HAVING min(day) = %(d)s) n)
             FROM r""",
        {"d": day},
    ).fetchone()
    assert row is not None
    versions = dict(
        conn.execute(
            """SELECT extension_version, count(*) FROM (
                   SELECT DISTINCT ON (db_uuid) extension_version FROM collector.reports
                    WHERE (received_at AT TIME ZONE 'UTC')::date = %s ORDER BY db_uuid, received_at DESC) x
                GROUP BY 1""",
            (day,),
        ).fetchall()
    )
    return {"reporting": row[0], "active_7": row[1], "active_30": row[2], "new": row[3], "versions": versions}


def rolled_up(conn: psycopg.Connection[Any], day: dt.date) -> dict[str, Any]:
    """The same, from the roll-up tables only."""
    counters = dict(
        conn.execute(
            """SELECT counter, sum(value) FILTER (WHERE counter LIKE 'active%%' OR day = %(d)s)
                 FROM collector.rollup_counters WHERE day <= %(d)s GROUP BY 1""",
            {"d": day},
        ).fetchall()
    )
    daily = conn.execute(
        "SELECT dimension, value, databases FROM collector.rollup_daily WHERE day = %s AND databases <> 0", (day,)
    ).fetchall()
    return {
        "reporting": sum(n for dim, _, n in daily if dim == rollup.ALL),
        "active_7": counters.get("active_7", 0),
        "active_30": counters.get("active_30", 0),
        "new": counters.get("new_databases") or 0,
        "versions": {v: n for dim, v, n in daily if dim == "extension_version"},
    }


def test_incremental_runs_count_exactly_what_the_reports_say(
    collector_dsn: str, collector_db: psycopg.Connection[Any]
) -> None:
    rng = random.Random(12)
    first = today(collector_db) - dt.timedelta(days=50)
    times = random_fleet(collector_db, first, 45, rng)
    # Runs at random moments (mid-day too), each taking what arrived since the last.
    cuts = [*sorted(rng.sample(times, 14)), times[-1]]
    for cut in cuts:
        assert roll_up(collector_dsn, until=cut).database_days > 0
    assert roll_up(collector_dsn, until=times[-1]).database_days == 0  # nothing new: nothing done

    last = times[-1].date()
    for offset in range((last - first).days + 31):  # and a month past the last report: windows empty out
        day = first + dt.timedelta(days=offset)
        assert rolled_up(collector_db, day) == expected(collector_db, day), day
    # Latest report per database, by version: the fleet "now".
    latest = dict(
        collector_db.execute(
            """SELECT extension_version, count(*) FROM (
                   SELECT DISTINCT ON (db_uuid) extension_version FROM collector.reports
                    ORDER BY db_uuid, received_at DESC) x GROUP BY 1"""
        ).fetchall()
    )
    assert (
        dict(
            collector_db.execute(
                """SELECT value, sum(databases) FROM collector.rollup_latest
                    WHERE dimension = 'extension_version' GROUP BY 1 HAVING sum(databases) <> 0"""
            ).fetchall()
        )
        == latest
    )
    restored = collector_db.execute(
        """SELECT count(*), coalesce(sum(n - 1), 0) FROM (
               SELECT count(DISTINCT db_uuid) AS n FROM collector.reports GROUP BY exported_db_uuid
               HAVING count(DISTINCT db_uuid) > 1) x"""
    ).fetchone()
    counted = collector_db.execute(
        """SELECT coalesce(sum(value) FILTER (WHERE counter = 'restored_exports'), 0),
                  coalesce(sum(value) FILTER (WHERE counter = 'restored_databases'), 0)
             FROM collector.rollup_counters"""
    ).fetchone()
    assert restored is not None and restored[0] > 0
    assert counted == restored

    # One run over everything gives the very same tables.
    incremental = snapshot(collector_db)
    roll_up(collector_dsn, until=times[-1], rebuild=True)
    assert snapshot(collector_db) == incremental


def test_a_second_report_the_same_day_replaces_that_days_values(
    collector_dsn: str, collector_db: psycopg.Connection[Any]
) -> None:
    day = today(collector_db) - dt.timedelta(days=2)
    db = str(uuid.uuid4())
    store(collector_db, at(day, 9), db_uuid=db, extension_version="0.9.0", postgresql_version="15.20")
    roll_up(collector_dsn, until=at(day, 10))
    store(collector_db, at(day, 15), db_uuid=db, extension_version="0.10.0", postgresql_version="16.4")
    roll_up(collector_dsn, until=at(day, 16))

    rows = collector_db.execute(
        "SELECT dimension, value, databases FROM collector.rollup_daily WHERE dimension IN ('all', "
        "'extension_version', 'postgresql_major') AND databases <> 0 ORDER BY 1, 2"
    ).fetchall()
    assert rows == [("all", "", 1), ("extension_version", "0.10.0", 1), ("postgresql_major", "16", 1)]
    assert collector_db.execute(
        "SELECT counter, sum(value) FROM collector.rollup_counters WHERE day <= %s GROUP BY 1 ORDER BY 1", (day,)
    ).fetchall() == [("active_30", 1), ("active_7", 1), ("new_databases", 1)]


def test_concurrent_runs_do_the_work_once(collector_dsn: str, collector_db: psycopg.Connection[Any]) -> None:
    """Runs that overlap for sure: the first is held mid-way (waiting for a table lock) while the others start."""
    first = today(collector_db) - dt.timedelta(days=20)
    times = random_fleet(collector_db, first, 15, random.Random(3))
    results: list[rollup.RollupResult] = []

    def run() -> None:
        results.append(roll_up(collector_dsn, until=times[-1]))

    with psycopg.connect(collector_dsn) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE collector.rollup_counters IN ACCESS EXCLUSIVE MODE")
        threads = [threading.Thread(target=run) for _ in range(4)]
        threads[0].start()
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        deadline = time.monotonic() + 60
        while collector_db.execute(waiting).fetchone() != (1,):  # the first run, mid-way, holding its lock
            assert time.monotonic() < deadline, "the first run never got mid-way"
            time.sleep(0.05)
        for t in threads[1:]:
            t.start()
        for t in threads[1:]:
            t.join(120)
        assert len(results) == 3 and all(r.skipped and r.database_days == 0 for r in results), results
        blocker.execute("COMMIT")
    threads[0].join(120)

    worked = [r for r in results if not r.skipped and r.database_days]
    assert len(results) == 4 and len(worked) == 1
    once = snapshot(collector_db)
    roll_up(collector_dsn, until=times[-1], rebuild=True)
    assert snapshot(collector_db) == once


def test_the_rollup_command(collector_dsn: str, collector_db: psycopg.Connection[Any]) -> None:
    store(collector_db, at(today(collector_db) - dt.timedelta(days=1)))
    first = run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
    assert "rolled up 1 database-days (1 databases)" in first.stdout, first.stdout
    again = run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
    assert "rolled up 0 database-days" in again.stdout, again.stdout
    # A report received after the watermark but within the settle margin waits for the next run.
    collector_db.execute("UPDATE collector.rollup_state SET watermark = now() - interval '1 hour'")
    store(collector_db, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5))
    waiting = run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "600")
    assert "rolled up 0 database-days" in waiting.stdout, waiting.stdout
    taken = run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
    assert "rolled up 1 database-days" in taken.stdout, taken.stdout
    rebuilt = run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0", "--rebuild")
    assert "rolled up 2 database-days (2 databases)" in rebuilt.stdout, rebuilt.stdout


def test_rollup_needs_the_schema(cluster: Any) -> None:
    from tests.collector.helpers import dsn_for

    with cluster.database("collector_unmigrated", extension=False):
        result = run_cli("rollup", "--dsn", dsn_for(cluster, "collector_unmigrated"), check=False)
    assert result.returncode == 1
    assert "run `python -m telemetry_collector migrate`" in result.stderr


def test_versions_invented_early_in_a_day_do_not_push_a_release_reported_later_into_other(
    collector_dsn: str, collector_db: psycopg.Connection[Any]
) -> None:
    day = today(collector_db) - dt.timedelta(days=3)
    collector_db.execute("INSERT INTO collector.releases (version) VALUES ('0.2.0'), ('0.3.0')")
    # At 00:01, three databases on 0.2.0 and a hundred invented versions, two databases each.
    for _ in range(3):
        store(collector_db, at(day, 0.02), extension_version="0.2.0")
    for n in range(rollup.MAX_VALUES_PER_DAY):
        for _ in range(2):
            store(collector_db, at(day, 0.02), extension_version=f"9.{n}")
    roll_up(collector_dsn, until=at(day, 0.1))
    # Later that day, fifty databases on the new release; and one more invented version.
    for _ in range(50):
        store(collector_db, at(day, 15), extension_version="0.3.0")
    store(collector_db, at(day, 15), extension_version="9.999")
    roll_up(collector_dsn, until=at(day, 16))

    daily = dict(
        collector_db.execute(
            "SELECT value, databases FROM collector.rollup_daily WHERE day = %s AND dimension = 'extension_version'",
            (day,),
        ).fetchall()
    )
    assert (daily["0.3.0"], daily["0.2.0"], daily[rollup.OTHER]) == (50, 3, 1)
    assert len(daily) == rollup.MAX_VALUES_PER_DAY + 3  # the cap holds for the invented ones
