"""The background worker sends by itself, from every database, quietly, and never in a DBA's way."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from tests import peers
from tests.cluster import Cluster
from tests.extension.job.helpers import answer
from tests.extension.worker.helpers import create_database, sent_attempts, wait_for, worker_cluster, workers
from tests.helpers import scalar
from tests.pgtree import PgTree


@pytest.fixture(scope="module")
def preloaded(pg_tree: PgTree) -> Iterator[Cluster]:
    with worker_cluster(pg_tree) as cluster:
        yield cluster


def _commits(cluster: Cluster, dbname: str) -> int:
    with cluster.connect() as conn:
        return int(scalar(conn, "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [dbname]))


def test_reports_arrive_from_each_database_and_from_one_created_later(
    preloaded: Cluster, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    url = httpserver.url_for("/v1/report")
    for name in ("first", "second"):
        create_database(preloaded, name, url)
    wait_for(lambda: len(httpserver.log) >= 2, "a report from each of two databases")
    create_database(preloaded, "later", url)
    wait_for(lambda: len(httpserver.log) >= 3, "a report from the database created after the start")
    for name in ("first", "second", "later"):
        assert sent_attempts(preloaded, name) == [("job", "sent")]
    ids = {request.get_json()["db_uuid"] for request, _ in httpserver.log}
    assert len(ids) == 3


def test_idle_rounds_write_no_line(preloaded: Cluster, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    create_database(preloaded, "idle", httpserver.url_for("/v1/report"))
    wait_for(lambda: sent_attempts(preloaded, "idle"), "the first report")
    offset = preloaded.log_offset()
    start = _commits(preloaded, "idle")
    # Each visit commits one transaction in the database: five idle rounds.
    wait_for(lambda: _commits(preloaded, "idle") >= start + 5, "five idle visits")
    assert preloaded.log_since(offset) == ""
    assert len(httpserver.log) == 1


def test_at_most_two_slots(preloaded: Cluster) -> None:
    """The launcher, and at most one visit at a time; never connected to a database itself."""
    seen: set[tuple[str, str | None]] = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline or len(seen) < 2:
        running = workers(preloaded)
        assert [kind for kind, _ in running].count("telemetry launcher") == 1, running
        assert [kind for kind, _ in running].count("telemetry visit") <= 1, running
        seen.update(running)
        assert time.monotonic() < deadline + 60, seen
    assert ("telemetry launcher", None) in seen
    assert any(kind == "telemetry visit" and name is not None for kind, name in seen)


@pytest.mark.parametrize(
    "command",
    [
        "DROP DATABASE {db}",
        "ALTER DATABASE {db} RENAME TO {db}_renamed",
        "CREATE DATABASE {db}_copy TEMPLATE {db}",
    ],
)
def test_dba_commands_succeed_during_a_hung_send(preloaded: Cluster, command: str) -> None:
    peer = peers.RawPeer(peers.hang)
    db = f"hung_{command.split()[0].lower()}"
    try:
        create_database(preloaded, db, peer.url, deadline="60 s")
        wait_for(lambda: peer.connections > 0, "the visit's send hanging at the peer")
        assert ("telemetry visit", db) in workers(preloaded)
        offset = preloaded.log_offset()
        with preloaded.connect() as admin:
            admin.execute(command.format(db=db))
        assert "is being accessed by other users" not in preloaded.log_since(offset)
    finally:
        peer.close()
        with preloaded.connect() as admin:
            for name in (db, f"{db}_renamed", f"{db}_copy"):
                admin.execute(
                    psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
                )
