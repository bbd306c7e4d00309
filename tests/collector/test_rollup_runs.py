"""Roll-up runs as an operator has them: overlapping, interrupted, after prune; and migrate run twice at once."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg

from tests.collector.fleet_helpers import at, store, today
from tests.collector.helpers import cli_env, dsn_for, run_cli
from tests.collector.test_rollup import snapshot

ROLLUP_LOCK = "SELECT pg_advisory_xact_lock(hashtext('telemetry_collector rollup'))"


def wait_for(condition: Any, what: str, seconds: float = 60.0) -> None:
    """Polls `condition()` until true; the bound only catches a hang."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never came: {what}"
        time.sleep(0.05)


def watermark(conn: psycopg.Connection[Any]) -> Any:
    row = conn.execute("SELECT watermark FROM collector.rollup_state").fetchone()
    assert row is not None
    return row[0]


def test_a_run_while_another_runs_does_nothing_and_says_so(
    collector_dsn: str, collector_db: psycopg.Connection[Any]
) -> None:
    store(collector_db, at(today(collector_db) - dt.timedelta(days=1)))
    empty = snapshot(collector_db)
    with psycopg.connect(collector_dsn) as running, running.transaction():
        running.execute(ROLLUP_LOCK)  # what a run holds, from its start to its commit
        overlapping = run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
        assert overlapping.stdout.strip() == "another roll-up is running; nothing done", overlapping.stdout
        assert snapshot(collector_db) == empty and watermark(collector_db) is None
    after = run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
    assert "rolled up 1 database-days (1 databases)" in after.stdout, after.stdout
    assert snapshot(collector_db) != empty


def test_an_interrupted_run_leaves_nothing_half_done(collector_dsn: str, collector_db: psycopg.Connection[Any]) -> None:
    first = today(collector_db) - dt.timedelta(days=5)
    for day in range(4):
        store(collector_db, at(first + dt.timedelta(days=day)))
    with psycopg.connect(collector_dsn) as blocker:
        # The run writes rollup_daily and rollup_latest, then waits here for rollup_counters.
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE collector.rollup_counters IN ACCESS EXCLUSIVE MODE")
        run = subprocess.Popen(
            [sys.executable, "-m", "telemetry_collector", "rollup", "--dsn", collector_dsn, "--settle-seconds", "0"],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Waiting for rollup_counters: past rollup_daily and rollup_latest, which it has written.
            half_done = """SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                            WHERE a.application_name = 'telemetry_rollup' AND NOT l.granted
                              AND l.relation = 'collector.rollup_counters'::regclass"""
            wait_for(lambda: collector_db.execute(half_done).fetchone() is not None, "the run, half done")
            row = collector_db.execute(half_done).fetchone()
            assert row is not None
            pid = row[0]
            collector_db.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert run.wait(60) != 0
        finally:
            run.kill()
            run.communicate()
        blocker.execute("ROLLBACK")
    assert all(rows == [] for rows in snapshot(collector_db).values()), snapshot(collector_db)
    assert collector_db.execute("SELECT count(*) FROM collector.rollup_daily").fetchone() == (0,)
    assert watermark(collector_db) is None
    again = run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
    assert "rolled up 4 database-days (4 databases)" in again.stdout, again.stdout


def test_roll_ups_outlive_prune(collector_dsn: str, collector_db: psycopg.Connection[Any]) -> None:
    run_cli("migrate", "--dsn", collector_dsn, "--months-back", "3")
    old = today(collector_db).replace(day=1) - dt.timedelta(days=70)  # in a month wholly past 40 days
    store(collector_db, at(old), extension_version="0.9.0")
    store(collector_db, at(today(collector_db) - dt.timedelta(days=1)), extension_version="0.10.0")
    run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
    rolled = snapshot(collector_db)
    assert any(row[0] == old for row in rolled["collector.rollup_daily"])

    pruned = run_cli("prune", "--older-than", "40d", "--dsn", collector_dsn)
    assert pruned.stdout.startswith("dropped: "), pruned.stdout
    old_reports = "SELECT count(*) FROM collector.reports WHERE received_at < %s"
    assert collector_db.execute(old_reports, [at(old, 23)]).fetchone() == (0,)
    assert snapshot(collector_db) == rolled  # the old month's trend is still there
    again = run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
    assert "rolled up 0 database-days" in again.stdout or "up to date" in again.stdout, again.stdout
    assert snapshot(collector_db) == rolled


def test_concurrent_migrate_runs(cluster: Any) -> None:
    """Several `migrate` at once (a deploy on several hosts): each succeeds, the schema is made once."""
    with cluster.database("collector_migrated_at_once", extension=False) as conn:
        dsn = dsn_for(cluster, "collector_migrated_at_once")
        results: list[subprocess.CompletedProcess[str]] = []

        def migrate() -> None:
            results.append(run_cli("migrate", "--dsn", dsn, "--months-back", "2", check=False))

        threads = [threading.Thread(target=migrate) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
        versions = conn.execute("SELECT version FROM collector.schema_migrations ORDER BY 1").fetchall()
        assert len(versions) == len({v for (v,) in versions}) > 0
        partitions = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'collector.reports'::regclass"
        ).fetchone()
        assert partitions == (4,)  # two months back, this month, next month
        store(conn, at(today(conn)))  # and the schema works
        again = run_cli("migrate", "--dsn", dsn, "--months-back", "2")
        assert again.returncode == 0
