"""ALTER EXTENSION telemetry UPDATE from each earlier release, as it shipped: state kept, catalog as fresh."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from tests import peers
from tests.cluster import Cluster
from tests.extension.job.helpers import sent_and_told
from tests.extension.upgrade import catalog
from tests.extension.upgrade.conftest import CRON_DATABASE
from tests.extension.upgrade.names import BY_RELEASE, CURRENT
from tests.extension.upgrade.released import (
    RELEASE_COMMITS,
    build_info,
    current_version,
    earlier_releases,
    kept_a_ledger,
    shipped_releases,
)
from tests.extension.upgrade.state import call, configure, cron_jobs, extension_version, kept, state, update
from tests.helpers import report, scalar
from tests.pgtree import REPO, PgTree

PROBE_QUERY = "SELECT count(*) FROM pg_catalog.pg_class"


def test_every_release_can_be_built_and_updated_from(release_tree: PgTree) -> None:
    assert "0.1.0" in shipped_releases()
    for release in shipped_releases():
        assert release in RELEASE_COMMITS, (
            f"sql/releases/{release}.sha256 has no release commit in sql/releases/commits"
        )
    scripts = sorted(p.name for p in (release_tree.sharedir / "extension").glob("telemetry--*.sql"))
    version = current_version()
    assert scripts == sorted(
        [
            f"telemetry--{version}.sql",
            *(f"telemetry--{r}.sql" for r in earlier_releases()),
            *(f"telemetry--{r}--{version}.sql" for r in earlier_releases()),
        ]
    )
    for release in earlier_releases():
        assert (release_tree.python_dir / release / build_info(release)).is_file()


def put_state(conn: psycopg.Connection[Any], release: str, httpserver: HTTPServer) -> str:
    """Everything a DBA and a year of sending leave behind, made by the release's own functions."""
    names = BY_RELEASE[release]
    configure(conn, names, httpserver.url_for("/v1/report"), jitter="30 min", interval="7 days")
    call(conn, names.register_metric, "upgrade_probe", PROBE_QUERY, "Relations in the catalog")
    switched = scalar(
        conn, f"SELECT key FROM {names.metrics_view} WHERE can_switch_off AND origin = 'declared' ORDER BY key LIMIT 1"
    )
    assert call(conn, names.set_metric_enabled, switched, False) is not None
    sent = call(conn, names.send_report)
    assert sent_and_told(sent) == ("sent", current_version(), False), sent
    # Then a failure: the schedule counts it and backs off.
    call(conn, names.set_option, "endpoint", peers.closed_port())
    assert call(conn, names.send_report)["outcome"] == "failed"
    call(conn, names.set_option, "endpoint", httpserver.url_for("/v1/report"))
    return str(switched)


@pytest.mark.parametrize("release", earlier_releases())
def test_update_keeps_every_state_and_equals_a_fresh_install(
    release: str, upgrade_cluster: Cluster, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(
        {"latest_version": current_version(), "up_to_date": False}
    )
    c = upgrade_cluster
    with c.database(CRON_DATABASE, extension=False) as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        conn.execute(f"CREATE EXTENSION telemetry VERSION '{release}' CASCADE")
        assert report(conn)["extension_version"] == release
        switched = put_state(conn, release, httpserver)
        before = state(conn)
        shown_before = report(conn)
        jobs_before = cron_jobs(conn)
        assert before["schedule"][0]["failures"] == 1 and len(before["attempts"]) == 2
        assert before["latest_version"][0]["latest_version"] == current_version()

        notices = update(c, CRON_DATABASE)

        with c.connect(CRON_DATABASE) as after:
            assert extension_version(after) == current_version()
            # Every row of state, byte for byte: identity, lineage, options, schedule
            # (next due, failures, jitter), audit, newest version, switches, vendor metrics.
            assert kept(before, state(after)) == before
            shown = report(after)
            for key in ("db_uuid", "exported_db_uuid", "installed_time"):
                assert shown[key] == shown_before[key], key
            assert shown["extension_version"] == current_version()
            assert "upgrade_probe" in shown["vendor_metrics"]
            enabled = after.execute(f"SELECT enabled FROM {CURRENT.metrics_view} WHERE key = %s", [switched]).fetchone()
            assert enabled == (False,)
            # The release's own pg_cron entry is gone: telemetry is preloaded, its background
            # worker calls the tick now (nothing ticks twice), and the tick still runs.
            assert len(jobs_before) == 1 and cron_jobs(after) == []
            tick_caller = scalar(after, "SELECT tick_caller FROM telemetry_status")
            assert tick_caller is not None and tick_caller.startswith("the background worker"), tick_caller
            outcome = scalar(after, jobs_before[0][2])
            assert outcome["outcome"] == "not_due", outcome  # the failure's back-off is still running
            ledger = after.execute(
                "SELECT name, applied_by_version, applied_at IS NOT NULL FROM _telemetry.migrations ORDER BY name"
            ).fetchall()
            updated_catalog = catalog.dump(after)
        assert any("telemetry: anonymous usage telemetry is ON" in n for n in notices), notices

        released = {
            line.split()[1] for line in (REPO / "sql" / "releases" / f"{release}.sha256").read_text().splitlines()
        }
        files = sorted(p.name for p in (REPO / "sql" / "incremental").glob("*.sql"))
        assert ledger == [
            (name, release, kept_a_ledger(release)) if name in released else (name, current_version(), True)
            for name in files
        ]

    with c.database("fresh_catalog") as fresh:
        fresh_catalog = catalog.dump(fresh)
        fresh_ledger = fresh.execute("SELECT DISTINCT applied_by_version FROM _telemetry.migrations").fetchall()
        assert fresh_ledger == [(current_version(),)]
    diff = catalog.differences(updated_catalog, fresh_catalog)
    print(
        f"\ncatalog after {release} -> {current_version()} vs fresh {current_version()}: "
        f"{catalog.summary(fresh_catalog)}; differences: {diff or 'none'}"
    )
    assert not diff, "the updated catalog differs from a fresh install:\n" + diff


def test_migrations_already_recorded_never_run_again(upgrade_cluster: Cluster, release_tree: PgTree) -> None:
    """The guard: every migration block of the install script, run again, changes nothing."""
    script = (release_tree.sharedir / "extension" / f"telemetry--{current_version()}.sql").read_text()
    blocks = re.findall(r"^DO \$telemetry_migration\$\n.*?^\$telemetry_migration\$;$", script, re.S | re.M)
    assert len(blocks) == len(list((REPO / "sql" / "incremental").glob("*.sql")))
    with upgrade_cluster.database("guarded") as conn:
        before = state(conn)
        for block in blocks:
            conn.execute(block.replace("@extschema@", "public"))
        assert state(conn) == before
        # Without the guard the first one fails: its schema exists.
        with pytest.raises(Exception, match="already exists"):
            unguarded = blocks[0].replace("IF EXISTS (SELECT FROM", "IF false AND EXISTS (SELECT FROM")
            conn.execute(unguarded.replace("@extschema@", "public"))
