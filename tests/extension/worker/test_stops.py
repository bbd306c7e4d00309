"""A fast shutdown and pg_terminate_backend end a visit at once, even during a hung send."""

from __future__ import annotations

from pytest_httpserver import HTTPServer

from tests import peers
from tests.cluster import Cluster
from tests.extension.worker.helpers import create_database, wait_for, worker_cluster, workers
from tests.helpers import scalar
from tests.pgtree import PgTree


def _visitor_pid(cluster: Cluster, dbname: str) -> int | None:
    with cluster.connect() as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'telemetry visit' AND datname = %s", [dbname]
        ).fetchone()
    return row[0] if row else None


def test_terminate_and_fast_shutdown_end_a_hung_send(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    peer = peers.RawPeer(peers.hang)
    try:
        with worker_cluster(pg_tree, name="stops") as cluster:
            create_database(cluster, "hung", peer.url, deadline="60 s")
            pid = wait_for(lambda: _visitor_pid(cluster, "hung") if peer.connections else None, "a hung visit")
            offset = cluster.log_offset()
            with cluster.connect() as conn:
                assert scalar(conn, "SELECT pg_terminate_backend(%s)", [pid]) is True
            # Gone, and the launcher goes on: the next round's visit hangs again.
            wait_for(lambda: _visitor_pid(cluster, "hung") != pid, "the terminated visit gone")
            assert 'terminating background worker "telemetry visit"' in cluster.log_since(offset)
            wait_for(lambda: peer.connections >= 2 and _visitor_pid(cluster, "hung"), "the next round's visit")
            assert [kind for kind, _ in workers(cluster)].count("telemetry launcher") == 1
            offset = cluster.log_offset()
            # pg_ctl stop -m fast, which gives up after 60 s: the send's own deadline is 60 s.
            cluster.stop()
            log = cluster.log_since(offset)
            assert 'terminating background worker "telemetry visit"' in log
            assert "database system is shut down" in log
    finally:
        peer.close()
