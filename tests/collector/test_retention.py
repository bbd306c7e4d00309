"""Retention: `prune` drops old monthly partitions, `erase` deletes one database's reports."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg

from tests.collector.helpers import Collector, make_report, run_cli


def partitions(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'collector.reports'::regclass ORDER BY 1"""
    ).fetchall()
    return [r[0] for r in rows]


def test_prune_drops_only_months_wholly_older_than_the_age(
    collector_dsn: str, collector_db: psycopg.Connection[Any]
) -> None:
    run_cli("migrate", "--dsn", collector_dsn, "--months-back", "14")
    for months_ago in (0, 5, 11, 12, 13, 14):
        collector_db.execute(
            """INSERT INTO collector.reports (received_at, db_uuid, exported_db_uuid, extension_version,
                                              postgresql_version, os_name, report)
               VALUES (date_trunc('month', now()) - make_interval(months => %s) + interval '1 day',
                       gen_random_uuid(), gen_random_uuid(), '0.1.0', '15.20', 'Linux', '{}')""",
            (months_ago,),
        )
    young = "SELECT count(*) FROM collector.reports WHERE received_at > now() - interval '365 days'"
    young_before = collector_db.execute(young).fetchone()
    before = partitions(collector_db)
    assert len(before) == 16  # 14 back, this month, next month

    dry = run_cli("prune", "--older-than", "365d", "--dry-run", "--dsn", collector_dsn)
    assert dry.stdout.startswith("would drop: ")
    assert partitions(collector_db) == before

    result = run_cli("prune", "--older-than", "365d", "--dsn", collector_dsn)

    dropped = result.stdout.removeprefix("dropped: ").strip().split(", ")
    assert dropped == before[: len(dropped)]  # the oldest ones, in order
    assert 2 <= len(dropped) <= 3  # 14 and 13 months back; 12 back only once all of it is past 365 days
    assert collector_db.execute(young).fetchone() == young_before  # nothing younger than the age was lost
    oldest = collector_db.execute("SELECT now() - min(received_at) < interval '396 days' FROM collector.reports")
    assert oldest.fetchone() == (True,)  # and nothing a whole month past it was kept
    assert run_cli("prune", "--older-than", "365d", "--dsn", collector_dsn).stdout.strip() == "nothing to drop"
    assert "not an age" in run_cli("prune", "--older-than", "soon", "--dsn", collector_dsn, check=False).stderr


def test_erase_deletes_every_report_of_one_database(
    collector: Collector, collector_dsn: str, collector_db: psycopg.Connection[Any]
) -> None:
    gone, kept = str(uuid.uuid4()), str(uuid.uuid4())
    dump = str(uuid.uuid4())
    for db in (gone, gone, kept):
        assert collector.post(make_report(db_uuid=db, exported_db_uuid=dump)).status_code == 200
    time.sleep(0.1)  # the edge writes in batches: let them commit before the roll-up reads
    run_cli("rollup", "--settle-seconds", "0", "--dsn", collector_dsn)
    named = "SELECT db_uuid::text FROM collector.rollup_databases ORDER BY 1"
    assert collector_db.execute(named).fetchall() == sorted([(gone,), (kept,)])

    result = run_cli("erase", "--db-uuid", gone.upper(), "--dsn", collector_dsn)

    assert result.stdout.strip() == f"erased 2 reports of {gone}"
    rows = collector_db.execute("SELECT db_uuid::text FROM collector.reports").fetchall()
    assert rows == [(kept,)]  # a copy restored from the same dump is another database
    assert collector_db.execute(named).fetchall() == [(kept,)]  # the roll-ups' counts name no one
    assert not collector_db.execute(
        "SELECT 1 FROM collector.reports WHERE report::text LIKE %s", (f"%{gone}%",)
    ).fetchall()
    assert run_cli("erase", "--db-uuid", gone, "--dsn", collector_dsn).stdout.strip() == f"erased 0 reports of {gone}"
    bad = run_cli("erase", "--db-uuid", "not-a-uuid", "--dsn", collector_dsn, check=False)
    assert bad.returncode == 2 and "not a UUID" in bad.stderr
