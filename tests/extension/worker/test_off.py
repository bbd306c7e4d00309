"""Off at each level stops the worker's sends; DISABLE_TELEMETRY stops its visits; a standby waits for promotion."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from tests.cluster import Cluster
from tests.extension.job.helpers import answer
from tests.extension.worker.helpers import (
    WORKER_CONF,
    create_database,
    sent_attempts,
    wait_for,
    worker_cluster,
    workers,
)
from tests.helpers import scalar
from tests.pgtree import PgTree


@pytest.fixture(scope="module")
def preloaded(pg_tree: PgTree) -> Iterator[Cluster]:
    with worker_cluster(pg_tree, name="off") as cluster:
        yield cluster


def _commits(cluster: Cluster, dbname: str) -> int:
    with cluster.connect() as conn:
        return int(scalar(conn, "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [dbname]))


def _visits_pass(cluster: Cluster, dbname: str, visits: int = 3) -> None:
    start = _commits(cluster, dbname)
    wait_for(lambda: _commits(cluster, dbname) >= start + visits, f"{visits} visits of {dbname}")


# Each level, set and reset; the visitor runs as the bootstrap superuser (the cluster's user).
LEVELS = {
    "system": ("ALTER SYSTEM SET telemetry.metrics_level = off", "ALTER SYSTEM RESET telemetry.metrics_level"),
    "database": (
        "ALTER DATABASE {db} SET telemetry.metrics_level = off",
        "ALTER DATABASE {db} RESET telemetry.metrics_level",
    ),
    "user": ("ALTER USER {user} SET telemetry.metrics_level = off", "ALTER USER {user} RESET telemetry.metrics_level"),
}


@pytest.mark.parametrize("level", LEVELS)
def test_off_at_each_level_stops_the_workers_sends(preloaded: Cluster, httpserver: HTTPServer, level: str) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    db = f"off_{level}"
    turn_off, turn_on = (sql.format(db=db, user=preloaded.user) for sql in LEVELS[level])
    with preloaded.connect() as admin:
        admin.execute(f"CREATE DATABASE {db}")
        admin.execute(turn_off)
        admin.execute("SELECT pg_reload_conf()")
    try:
        with preloaded.connect(db) as conn:
            conn.execute("CREATE EXTENSION telemetry CASCADE")
            for option, value in {"endpoint": httpserver.url_for("/v1/report"), "grace": "0", "jitter": "0"}.items():
                conn.execute("SELECT telemetry_set_option(%s, %s)", [option, value])
        _visits_pass(preloaded, db)
        assert httpserver.log == [] and sent_attempts(preloaded, db) == []
    finally:
        with preloaded.connect() as admin:
            admin.execute(turn_on)
            admin.execute("SELECT pg_reload_conf()")
    # On again: the same database sends (the test would see a send that off let through).
    wait_for(lambda: sent_attempts(preloaded, db) == [("job", "sent")], "a send once the level is on again")


def test_disable_telemetry_stops_the_launcher_from_visiting(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    with worker_cluster(pg_tree, env={"DISABLE_TELEMETRY": "1"}, name="disabled") as cluster:
        create_database(cluster, "disabled", httpserver.url_for("/v1/report"))
        wait_for(lambda: ("telemetry launcher", None) in workers(cluster), "the launcher")
        start = _commits(cluster, "disabled")
        deadline = time.monotonic() + 5  # five rounds' worth of time
        while time.monotonic() < deadline:
            assert [kind for kind, _ in workers(cluster)] == ["telemetry launcher"]
            time.sleep(0.05)
        assert _commits(cluster, "disabled") == start
        assert httpserver.log == []


def test_a_standby_sends_nothing_until_promoted(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    # The primary is kept from sending by its environment; the standby's is clean.
    with worker_cluster(pg_tree, env={"DISABLE_TELEMETRY": "1"}, name="primary") as primary:
        create_database(primary, "replicated", httpserver.url_for("/v1/report"))
        with primary.standby(conf=WORKER_CONF) as standby:
            deadline = time.monotonic() + 5  # five rounds' worth of time, were anything to run
            while time.monotonic() < deadline:
                assert workers(standby) == []
                time.sleep(0.05)
            assert httpserver.log == []
            with standby.connect() as conn:
                conn.execute("SELECT pg_promote()")
            wait_for(lambda: len(httpserver.log) == 1, "the promoted server's report")
            assert sent_attempts(standby, "replicated") == [("job", "sent")]
