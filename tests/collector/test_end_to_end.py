"""The whole loop on one machine: the extension reports to the real collector, which answers."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from tests.cluster import Cluster
from tests.collector.helpers import Collector, run_cli
from tests.extension.job.helpers import configure
from tests.helpers import EXTENSION_VERSION, release_after, report

NEWER = release_after()


def test_extension_reports_to_the_collector_and_learns_the_newer_release(
    db: psycopg.Connection[Any],
    cluster: Cluster,
    collector: Collector,
    collector_dsn: str,
    collector_db: psycopg.Connection[Any],
) -> None:
    run_cli("release", "add", EXTENSION_VERSION, "--dsn", collector_dsn)
    run_cli("release", "add", NEWER, "--dsn", collector_dsn)
    configure(db, f"{collector.url}/v1/report")
    shown = report(db)
    offset = cluster.log_offset()

    row = db.execute("SELECT telemetry_tick()").fetchone()
    assert row is not None
    outcome = row[0]

    assert outcome["outcome"] == "sent", outcome
    assert (outcome["latest_version"], outcome["up_to_date"]) == (NEWER, False)
    stored = collector_db.execute("SELECT db_uuid::text, report FROM collector.reports").fetchall()
    assert [(row[0], row[1]) for row in stored] == [(shown["db_uuid"], shown)]
    status = db.execute("SELECT newest_version, up_to_date, last_outcome FROM telemetry_status").fetchone()
    assert status == (NEWER, False, "sent")
    deadline = time.monotonic() + 60
    while not (warnings := [line for line in cluster.log_since(offset).splitlines() if "WARNING" in line]):
        assert time.monotonic() < deadline, "no WARNING in the server log"
        time.sleep(0.05)
    assert len(warnings) == 1 and f"the newest release is {NEWER}" in warnings[0]
    # The edge serves ingestion and health only: the fleet is the vendor side's.
    assert collector.get("/v1/fleet").status_code == 404
    # The vendor side counts it once rolled up.
    run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
    rolled = collector_db.execute("SELECT databases FROM collector.rollup_latest WHERE dimension = 'all'").fetchall()
    assert rolled == [(1,)]
