"""telemetry.tick_interval: 15 minutes by default, at least 1 second, changed with a reload."""

from __future__ import annotations

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from tests.extension.job.helpers import answer
from tests.extension.worker.helpers import create_database, wait_for, worker_cluster, workers
from tests.helpers import scalar
from tests.pgtree import PgTree


def test_the_interval_is_reloadable(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    # No -c option: the default, then ALTER SYSTEM (which a -c option would override).
    with worker_cluster(pg_tree, conf={"telemetry.tick_interval": None}, name="interval") as cluster:
        with cluster.connect() as admin:
            assert scalar(admin, "SHOW telemetry.tick_interval") == "15min"
            with pytest.raises(psycopg.errors.InvalidParameterValue):
                admin.execute("ALTER SYSTEM SET telemetry.tick_interval = 0")
        # The launcher's first round (at its start) is over before the database exists.
        wait_for(lambda: workers(cluster) == [("telemetry launcher", None)], "the launcher, between rounds")
        create_database(cluster, "interval", httpserver.url_for("/v1/report"))
        # The launcher's first round ran at the start, before the extension existed: the
        # report waits for the next, which the reload brings forward.
        assert httpserver.log == []
        with cluster.connect() as admin:
            admin.execute("ALTER SYSTEM SET telemetry.tick_interval = '1s'")
            admin.execute("SELECT pg_reload_conf()")
        wait_for(lambda: len(httpserver.log) == 1, "the report once the interval is 1 s")
