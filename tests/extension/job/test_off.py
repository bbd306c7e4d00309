"""Off means off: no network, no log, at every level and by environment."""

from __future__ import annotations

from typing import Any

import psycopg
from pytest_httpserver import HTTPServer

from tests.cluster import Cluster
from tests.extension.job.helpers import (
    answer,
    attempts,
    configure,
    peer_answers,
    telemetry_log_lines,
    tick,
)
from tests.helpers import Notices
from tests.pgtree import PgTree


def test_off_means_no_io_no_log_and_on_again_resumes(
    db: psycopg.Connection[Any], cluster: Cluster, httpserver: HTTPServer
) -> None:
    peer_answers(db, httpserver, answer())
    db.execute(f'ALTER DATABASE "{db.info.dbname}" SET telemetry.metrics_level = off')
    offset = cluster.log_offset()
    with cluster.connect(db.info.dbname) as conn:
        assert tick(conn) == {"outcome": "disabled", "metrics_level": "off", "metrics_level_source": "database"}
        notices = Notices(conn)
        assert tick(conn, "telemetry_send_report")["outcome"] == "disabled"
        assert any("nothing sent" in n for n in notices.of("NOTICE"))
    assert httpserver.log == [] and attempts(db) == []
    assert telemetry_log_lines(cluster, offset) == []
    db.execute(f'ALTER DATABASE "{db.info.dbname}" SET telemetry.metrics_level = basic')
    with cluster.connect(db.info.dbname) as conn:
        assert tick(conn)["outcome"] == "sent"
    assert len(httpserver.log) == 1


def test_off_by_environment_blocks_the_job(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    with Cluster(pg_tree, name="envjob", env={"DISABLE_TELEMETRY": "1"}) as c:
        with c.database("envjob") as conn:
            configure(conn, httpserver.url_for("/v1/report"))
            assert tick(conn)["outcome"] == "disabled"
            assert tick(conn, "telemetry_send_report")["outcome"] == "disabled"
        assert httpserver.log == []
