"""Nothing is sent where nothing can be recorded: read-only transactions and standbys."""

from __future__ import annotations

from typing import Any

import psycopg
from pytest_httpserver import HTTPServer

from tests.cluster import Cluster
from tests.extension.job.helpers import answer, attempts, configure, peer_answers, telemetry_log_lines
from tests.helpers import Notices, scalar


def test_read_only_transaction_sends_nothing_and_says_so(
    db: psycopg.Connection[Any], cluster: Cluster, httpserver: HTTPServer
) -> None:
    peer_answers(db, httpserver, answer())
    offset = cluster.log_offset()
    with db.transaction():
        db.execute("SET TRANSACTION READ ONLY")
        outcome = scalar(db, "SELECT telemetry_tick()")
    assert outcome["outcome"] == "read_only" and "read-only" in outcome["detail"]
    notices = Notices(db)
    db.execute("SET default_transaction_read_only = on")
    try:
        manual = scalar(db, "SELECT telemetry_send_report()")
    finally:
        db.execute("SET default_transaction_read_only = off")
    assert manual["outcome"] == "read_only"
    assert any("nothing sent" in text and "read-only" in text for _, text in notices.items), notices.items
    assert httpserver.log == []
    assert attempts(db) == []
    assert not [line for line in telemetry_log_lines(cluster, offset) if "ERROR" in line]
    # Read-write again: the same tick sends, once.
    assert scalar(db, "SELECT telemetry_tick()")["outcome"] == "sent"
    assert len(httpserver.log) == 1


def test_standby_sends_nothing(cluster: Cluster, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    with cluster.database("replicated") as primary:
        configure(primary, httpserver.url_for("/v1/report"))  # due now
        with cluster.standby() as standby:
            with standby.connect("replicated") as conn:
                assert scalar(conn, "SELECT pg_is_in_recovery()") is True
                for function in ("telemetry_tick", "telemetry_send_report"):
                    outcome = scalar(conn, f"SELECT {function}()")
                    assert outcome["outcome"] == "read_only", outcome
                    assert "standby" in outcome["detail"]
            assert httpserver.log == []
            assert "ERROR" not in standby.log()
        assert attempts(primary) == []
        # The primary itself still sends.
        assert scalar(primary, "SELECT telemetry_tick()")["outcome"] == "sent"
    assert len(httpserver.log) == 1
