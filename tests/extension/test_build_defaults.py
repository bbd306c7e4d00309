"""What a packager's make variables do, on a real cluster of a build made with them.

- `make TELEMETRY_DEFAULT_LEVEL=off`: the level is off unless a DBA turns it on; the NOTICE says
  that the package was built so, and the report's metrics_level_source is "default".
- A build left with the placeholder endpoint (https://telemetry.invalid/...) sends nothing and logs
  nothing, and the NOTICE, telemetry_status and telemetry_send_report() say so.

The build is made from a copy of this checkout (its tracked and new files), so the suite's own build
is left alone; the copy's pinned Python dependencies are the checkout's, not a second download.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from telemetry_extension import build_info
from tests.cluster import Cluster
from tests.extension.job.helpers import answer, attempts, configure, telemetry_log_lines, tick
from tests.extension.test_regress import regress_tests, run_installcheck
from tests.helpers import Notices, report
from tests.pgtree import PgTree, copy_of_checkout, temporary_tree

PLACEHOLDER = build_info.PLACEHOLDER_ENDPOINT


@pytest.fixture(scope="module")
def off_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgTree]:
    """A distributor's build: default level off, and no endpoint given (the placeholder)."""
    source = copy_of_checkout(tmp_path_factory.mktemp("distributor") / "telemetry")
    # CARRIED_RELEASES=: the copy is no git checkout, and what it tests is the build's defaults.
    build = ("TELEMETRY_DEFAULT_LEVEL=off", "CARRIED_RELEASES=")
    with temporary_tree("telemetry-distributor-", source, build) as tree:
        yield tree


@pytest.fixture(scope="module")
def off_cluster(off_tree: PgTree) -> Iterator[Cluster]:
    with Cluster(off_tree, name="distributor") as cluster:
        yield cluster


def _telemetry_notice(conn: Any, sql: str) -> str:
    notices = Notices(conn)
    conn.execute(sql)
    [text] = [n for n in notices.of("NOTICE") if n.startswith("telemetry:")]
    return text


def test_a_default_off_build_is_off_until_the_dba_turns_it_on(off_cluster: Cluster, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    with off_cluster.database("distributor_off", extension=False) as conn:
        assert conn.execute("SELECT boot_val FROM pg_settings WHERE name = 'telemetry.metrics_level'").fetchone() == (
            "off",
        )
        text = _telemetry_notice(conn, "CREATE EXTENSION telemetry CASCADE")
        assert "telemetry is OFF (telemetry.metrics_level = off, from default)" in text, text
        assert "built it with TELEMETRY_DEFAULT_LEVEL=off" in text and "= basic" in text, text
        shown = report(conn)
        assert (shown["metrics_level"], shown["metrics_level_source"]) == ("off", "default")
        status = conn.execute("SELECT metrics_level, metrics_level_source, next_due FROM telemetry_status").fetchone()
        assert status == ("off", "default", None)

        configure(conn, httpserver.url_for("/v1/report"))
        offset = off_cluster.log_offset()
        assert tick(conn)["outcome"] == "disabled"
        assert httpserver.log == [] and attempts(conn) == []
        assert telemetry_log_lines(off_cluster, offset) == []

        # The DBA turns it on: the distributor's default no longer applies.
        conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET telemetry.metrics_level = basic')
        with off_cluster.connect(conn.info.dbname) as session:
            shown = report(session)
            assert (shown["metrics_level"], shown["metrics_level_source"]) == ("basic", "database")
            assert tick(session)["outcome"] == "sent"
    assert len(httpserver.log) == 1


def test_a_build_without_an_endpoint_sends_nothing_logs_nothing_and_says_so(
    off_cluster: Cluster, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    with off_cluster.connect() as admin:
        admin.execute("CREATE DATABASE no_endpoint")
        admin.execute("ALTER DATABASE no_endpoint SET telemetry.metrics_level = basic")
    try:
        _no_endpoint(off_cluster, httpserver)
    finally:
        with off_cluster.connect() as admin:
            admin.execute("DROP DATABASE no_endpoint WITH (FORCE)")


def _no_endpoint(off_cluster: Cluster, httpserver: HTTPServer) -> None:
    with off_cluster.connect("no_endpoint") as conn:
        text = _telemetry_notice(conn, "CREATE EXTENSION telemetry CASCADE")
        assert text.startswith("telemetry: nothing will be sent: this build of the extension has no endpoint"), text
        assert PLACEHOLDER in text and "telemetry_set_option('endpoint'" in text, text
        status = conn.execute("SELECT metrics_level, endpoint, next_due FROM telemetry_status").fetchone()
        assert status == ("basic", f"none: this build has no endpoint ({PLACEHOLDER})", None)

        for option in ("grace", "jitter"):
            conn.execute("SELECT telemetry_set_option(%s, '0')", [option])
        offset = off_cluster.log_offset()
        assert tick(conn)["outcome"] == "no_endpoint"
        send = _telemetry_notice(conn, "SELECT telemetry_send_report()")
        assert "this build of the extension has no endpoint" in send, send
        assert attempts(conn) == []
        assert telemetry_log_lines(off_cluster, offset) == []

        # An endpoint a superuser sets is used.
        conn.execute("SELECT telemetry_set_option('endpoint', %s)", [httpserver.url_for("/v1/report")])
        assert tick(conn)["outcome"] == "sent"
    assert len(httpserver.log) == 1


def test_the_regression_suite_passes_on_a_build_without_an_endpoint(off_tree: PgTree) -> None:
    """As on the Debian package built here (basic, no endpoint): pg_regress's outputs for its NOTICE."""
    with Cluster(off_tree, name="regress-no-endpoint", conf={"telemetry.metrics_level": "basic"}) as cluster:
        outputdir = off_tree.tempdir("regress-")
        code, output = run_installcheck(cluster.socketdir, cluster.port, cluster.user, outputdir)
        assert code == 0, output
        assert all(name in output for name in regress_tests())
