"""No free worker slot is said once; a visit that fails is one line, then a backoff, not a line every round."""

from __future__ import annotations

import time

from pytest_httpserver import HTTPServer

from tests.extension.job.helpers import answer
from tests.extension.worker.helpers import create_database, sent_attempts, wait_for, worker_cluster
from tests.pgtree import PgTree

NO_SLOT = "telemetry: no background worker slot free"


def test_no_free_slot_waits_and_says_so_once(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    # Two slots: the launcher's and the logical replication launcher's; none for a visit.
    with worker_cluster(pg_tree, conf={"max_worker_processes": "2"}, name="noslot") as cluster:
        create_database(cluster, "noslot", httpserver.url_for("/v1/report"))
        wait_for(lambda: NO_SLOT in cluster.log(), "the line saying no slot is free")
        time.sleep(5)  # five more rounds at tick_interval = 1s
        assert cluster.log().count(NO_SLOT) == 1
        assert httpserver.log == [] and sent_attempts(cluster, "noslot") == []


def test_a_failing_visit_is_one_line_then_a_backoff(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    with worker_cluster(pg_tree, name="failing") as cluster:
        create_database(cluster, "broken", httpserver.url_for("/v1/report"))
        with cluster.connect("broken") as conn:
            conn.execute(
                "CREATE OR REPLACE FUNCTION _telemetry.tick_check() RETURNS jsonb LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'tick broken on purpose'; END $$"
            )
        wait_for(lambda: "tick broken on purpose" in cluster.log(), "the failing visit's line")
        started = time.monotonic()
        # Another database is visited all the while, and sends.
        create_database(cluster, "healthy", httpserver.url_for("/v1/report"))
        wait_for(lambda: sent_attempts(cluster, "healthy"), "the healthy database's report")
        time.sleep(max(0.0, 12 - (time.monotonic() - started)))  # twelve rounds at tick_interval = 1s
        lines = [line for line in cluster.log().splitlines() if "tick broken on purpose" in line]
        # Skipped 1, 3, 7 rounds after the 1st, 2nd, 3rd failure: at most 4 lines in 13 rounds, not 13.
        assert 1 <= len([line for line in lines if "ERROR" in line]) <= 4, lines
        assert "exited with exit code" not in cluster.log()
