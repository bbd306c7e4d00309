"""A tick with nothing due, or at off, answers in plain SQL: Python is never loaded, almost nothing is written."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from tests.cluster import Cluster
from tests.extension.job.helpers import tick
from tests.helpers import scalar


def python_loaded(conn: psycopg.Connection[Any]) -> bool:
    """Whether this session's backend has mapped PL/Python or libpython."""
    maps = Path(f"/proc/{conn.info.backend_pid}/maps").read_text()
    return "plpython3" in maps or "libpython3" in maps


def _schedule_version(conn: psycopg.Connection[Any]) -> str:
    return str(scalar(conn, "SELECT xmin::text FROM _telemetry.schedule"))


def test_not_due_tick_in_a_new_backend_loads_no_python(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    for function in ("_telemetry.tick", "telemetry_tick"):
        with cluster.connect(db.info.dbname) as fresh:
            assert tick(fresh, function)["outcome"] == "not_due"
            assert not python_loaded(fresh), function
    with cluster.connect(db.info.dbname) as fresh:
        # The same answer as the Python tick's, to the microsecond.
        sql_answer = tick(fresh, "_telemetry.tick")
        python_answer = tick(fresh, "_telemetry.run_tick")
        assert python_loaded(fresh)  # the probe can see it
        assert python_answer["outcome"] == "not_due"
        assert datetime.fromisoformat(sql_answer["next_due"]) == datetime.fromisoformat(python_answer["next_due"])


def test_off_tick_in_a_new_backend_loads_no_python(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    db.execute(f"ALTER DATABASE \"{db.info.dbname}\" SET telemetry.metrics_level = ' Off '")
    with cluster.connect(db.info.dbname) as fresh:
        assert tick(fresh, "_telemetry.tick") == {
            "outcome": "disabled",
            "metrics_level": "off",
            "metrics_level_source": "database",
        }
        assert not python_loaded(fresh)


def test_not_due_tick_writes_at_most_once_an_hour(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    assert scalar(db, "SELECT last_tick FROM _telemetry.schedule") is None
    tick(db)
    seen = scalar(db, "SELECT last_tick FROM _telemetry.schedule")
    assert seen is not None
    version = _schedule_version(db)
    for _ in range(3):
        assert tick(db)["outcome"] == "not_due"
    assert _schedule_version(db) == version  # no new row version: nothing written
    db.execute("UPDATE _telemetry.schedule SET last_tick = now() - interval '61 minutes'")
    tick(db)
    assert scalar(db, "SELECT last_tick > now() - interval '1 minute' FROM _telemetry.schedule")


def test_not_due_tick_in_a_read_only_transaction_writes_nothing(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    with cluster.connect(db.info.dbname) as conn:
        conn.execute("BEGIN READ ONLY")
        assert tick(conn)["outcome"] == "not_due"
        conn.execute("COMMIT")
    assert scalar(db, "SELECT last_tick FROM _telemetry.schedule") is None


def test_changing_grace_moves_the_first_due_time(db: psycopg.Connection[Any]) -> None:
    before = tick(db)["next_due"]
    db.execute("SELECT telemetry_set_option('grace', '3 days')")
    after = tick(db)["next_due"]
    seconds = (datetime.fromisoformat(after) - datetime.fromisoformat(before)).total_seconds()
    assert abs(seconds - 2 * 86400) < 1
