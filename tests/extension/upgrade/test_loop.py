"""The loop closes: an earlier release learns from the real collector that a newer one exists,
is updated, and its next report says up to date."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from telemetry_collector.config import Settings
from tests.cluster import Cluster
from tests.collector.helpers import Collector, dsn_for, run_cli
from tests.extension.job.helpers import sent_and_told
from tests.extension.upgrade.names import BY_RELEASE, CURRENT
from tests.extension.upgrade.released import current_version, earlier_releases
from tests.extension.upgrade.state import call, configure, update
from tests.helpers import report, scalar


@pytest.fixture
def collector(upgrade_cluster: Cluster) -> Iterator[tuple[Collector, str]]:
    """The collector on loopback, its storage in the upgrade cluster, knowing every release up to ours."""
    with upgrade_cluster.database("collector_for_upgrade", extension=False):
        dsn = dsn_for(upgrade_cluster, "collector_for_upgrade")
        run_cli("migrate", "--dsn", dsn, "--months-back", "2")
        for release in [*earlier_releases(), current_version()]:
            run_cli("release", "add", release, "--dsn", dsn)
        # Products in every answer: earlier releases must read past them (this server's PostgreSQL is current).
        with upgrade_cluster.connect() as conn:
            num = int(scalar(conn, "SELECT current_setting('server_version_num')"))
        notes = "https://example.org/notes"
        run_cli("release", "add", f"{num // 10000}.{num % 10000}", "--product", "postgresql", "--dsn", dsn)
        run_cli("release", "add", "1.0", "--product", "plpgsql", "--notes-url", notes, "--dsn", dsn)
        started = Collector(Settings(dsn=dsn, release_cache_seconds=0.0, pool_min_size=1, pool_max_size=2)).start()
        try:
            yield started, dsn
        finally:
            started.stop()


def log_lines(cluster: Cluster, offset: int, text: str) -> list[str]:
    time.sleep(0.2)  # the server's log is written asynchronously to our reading it
    return [line for line in cluster.log_since(offset).splitlines() if text in line]


@pytest.mark.parametrize("release", earlier_releases())
def test_told_of_the_newer_release_then_updated_then_up_to_date(
    release: str, upgrade_cluster: Cluster, collector: tuple[Collector, str]
) -> None:
    c = upgrade_cluster
    service, dsn = collector
    names = BY_RELEASE[release]
    with c.database("closing_the_loop", extension=False) as on_release:
        on_release.execute(f"CREATE EXTENSION telemetry VERSION '{release}' CASCADE")
        configure(on_release, names, f"{service.url}/v1/report")
        offset = c.log_offset()
        outcome = call(on_release, names.tick)
        assert sent_and_told(outcome) == ("sent", current_version(), False), outcome
        [warning] = log_lines(c, offset, f"the newest release is {current_version()}")
        assert "WARNING" in warning and f"version {release} is installed" in warning
        before = report(on_release)

        update(c, "closing_the_loop")

        with c.connect("closing_the_loop") as conn:
            offset = c.log_offset()
            outcome = call(conn, CURRENT.send_report)
            assert sent_and_told(outcome) == ("sent", current_version(), True), outcome
            assert log_lines(c, offset, "WARNING") == []
            assert log_lines(c, offset, f"telemetry: version {current_version()} is up to date")
            status = conn.execute(
                f"SELECT installed_version, newest_version, up_to_date, last_outcome FROM {CURRENT.status_view}"
            ).fetchone()
            assert status == (current_version(), current_version(), True, "sent")
            stored = conn.execute(
                "SELECT installed_version, latest_version, up_to_date FROM _telemetry.latest_version"
            ).fetchall()
            assert stored == [(current_version(), current_version(), True)]
            told = conn.execute("SELECT product, up_to_date FROM telemetry_versions").fetchall()
            assert told == [("telemetry", True), ("plpgsql", True), ("postgresql", True)]
    # The collector saw the same database report both versions.
    with psycopg.connect(dsn) as collector_db:
        seen = collector_db.execute(
            "SELECT db_uuid::text, report->>'extension_version' FROM collector.reports ORDER BY received_at"
        ).fetchall()
    assert seen == [(before["db_uuid"], release), (before["db_uuid"], current_version())]
