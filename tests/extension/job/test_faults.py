"""Faults of the peer and the network: each recorded, contained, logged once, backed off."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests import peers
from tests.cluster import Cluster
from tests.extension.job.helpers import (
    DEADLINE,
    answer,
    attempts,
    configure,
    in_thread,
    seconds_until,
    telemetry_log_lines,
    tick,
)
from tests.helpers import scalar


def _http_fault(httpserver: HTTPServer, kind: str) -> tuple[str, str]:
    url = httpserver.url_for("/v1/report")
    if kind == "500":
        httpserver.expect_request("/v1/report").respond_with_data("boom", status=500)
        return url, "HTTP 500"
    if kind == "invalid json":
        httpserver.expect_request("/v1/report").respond_with_data("{not json", content_type="application/json")
        return url, "invalid answer: answer is not valid JSON"
    if kind == "nested 60,000 deep":
        # Under the size cap; json.loads would recurse once per level (RecursionError).
        httpserver.expect_request("/v1/report").respond_with_data(b"[" * 60000, content_type="application/json")
        return url, "invalid answer: answer nests arrays or objects deeper than 16 levels"
    if kind == "invalid version":
        httpserver.expect_request("/v1/report").respond_with_json({"latest_version": "banana'; DROP TABLE x"})
        return url, "invalid answer: invalid version string"
    if kind == "100 MB with length":
        body = b"x" * (100 * 1024 * 1024)
        httpserver.expect_request("/v1/report").respond_with_data(body, content_type="application/json")
        return url, "answer of 104857600 bytes refused"
    if kind == "redirect to another host":
        other = url.replace("localhost", "127.0.0.1")
        httpserver.expect_request("/v1/report").respond_with_response(Response(status=307, headers={"Location": other}))
        return url, "redirect to another location not followed"
    raise AssertionError(kind)


RAW_FAULTS = {
    "no answer": (peers.hang, "no complete answer within the deadline"),
    "slow drip": (peers.slow_drip, "no complete answer within the deadline"),
    "100 MB chunked": (peers.huge_chunked, "answer larger than 65536 bytes refused"),
}


HANG = 30  # seconds past the deadline that only a hung tick takes

HTTP_FAULTS = [
    "500",
    "invalid json",
    "nested 60,000 deep",
    "invalid version",
    "100 MB with length",
    "redirect to another host",
]


def _assert_failure_handled(
    db: psycopg.Connection[Any], cluster: Cluster, offset: int, started: float, outcome: dict[str, Any], error: str
) -> None:
    elapsed = time.monotonic() - started
    assert outcome["outcome"] == "failed"
    assert outcome["error"].startswith(error)
    # Catches a hang only (a loaded machine may be slow); how long a send takes is measured in bench/.
    assert elapsed < DEADLINE + HANG, f"tick took {elapsed:.1f}s"
    [audit] = attempts(db)
    assert audit["outcome"] == "failed" and audit["error"].startswith(error)
    assert scalar(db, "SELECT count(*) FROM _telemetry.latest_version") == 0
    lines = telemetry_log_lines(cluster, offset)
    assert len(lines) == 1 and "report not sent" in lines[0], lines
    assert "Traceback" not in cluster.log_since(offset)
    assert scalar(db, "SELECT failures FROM _telemetry.schedule") == 1
    assert abs(seconds_until(db) - 3600) < 60  # back-off: retry_base, 1 hour


@pytest.mark.parametrize("kind", HTTP_FAULTS)
def test_http_faults_are_recorded_and_contained(
    db: psycopg.Connection[Any], cluster: Cluster, httpserver: HTTPServer, kind: str
) -> None:
    url, error = _http_fault(httpserver, kind)
    configure(db, url)
    offset, started = cluster.log_offset(), time.monotonic()
    _assert_failure_handled(db, cluster, offset, started, tick(db), error)


@pytest.mark.parametrize("kind", list(RAW_FAULTS))
def test_raw_faults_are_recorded_and_contained(db: psycopg.Connection[Any], cluster: Cluster, kind: str) -> None:
    behave, error = RAW_FAULTS[kind]
    peer = peers.RawPeer(behave)
    try:
        configure(db, peer.url)
        offset, started = cluster.log_offset(), time.monotonic()
        _assert_failure_handled(db, cluster, offset, started, tick(db), error)
    finally:
        peer.close()


@pytest.mark.parametrize("kind", ["no answer", "slow drip"])
def test_no_lock_is_held_across_a_faulty_exchange(db: psycopg.Connection[Any], cluster: Cluster, kind: str) -> None:
    """While the tick waits on the peer, another session takes every lock of the extension's tables and rows."""
    behave, error = RAW_FAULTS[kind]
    peer = peers.RawPeer(behave)
    try:
        configure(db, peer.url, deadline="10 s")
        thread, result = in_thread(cluster, db.info.dbname, "SELECT telemetry_tick()")
        until = time.monotonic() + 60
        while peer.connections == 0 and time.monotonic() < until:
            time.sleep(0.05)
        assert peer.connections == 1 and thread.is_alive()
        with db.transaction():
            db.execute("SET LOCAL lock_timeout = '5s'")  # a held lock fails this, long before the deadline
            db.execute(
                "LOCK TABLE _telemetry.schedule, _telemetry.attempts, _telemetry.options, _telemetry.instance,"
                " _telemetry.latest_version IN ACCESS EXCLUSIVE MODE"
            )
            db.execute("SELECT * FROM _telemetry.schedule FOR UPDATE")
        still_sending = thread.is_alive()
        thread.join(60)
    finally:
        peer.close()
    assert still_sending, "the exchange ended before the locks were taken: nothing was tested"
    assert result["value"]["outcome"] == "failed" and result["value"]["error"].startswith(error)


def test_connection_refused(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    configure(db, peers.closed_port())
    offset, started = cluster.log_offset(), time.monotonic()
    _assert_failure_handled(db, cluster, offset, started, tick(db), "connection failed")


def test_self_signed_certificate_fails_then_ca_file_trusts_it(
    db: psycopg.Connection[Any], cluster: Cluster, tls_peer: tuple[HTTPServer, str]
) -> None:
    server, ca_file = tls_peer
    configure(db, server.url_for("/v1/report"))
    offset, started = cluster.log_offset(), time.monotonic()
    _assert_failure_handled(db, cluster, offset, started, tick(db), "TLS verification failed")
    db.execute("SELECT telemetry_set_option('ca_file', %s)", [ca_file])
    assert tick(db, "telemetry_send_report")["outcome"] == "sent"


def test_retry_after_is_respected(db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_data("slow down", status=429, headers={"Retry-After": "7200"})
    configure(db, httpserver.url_for("/v1/report"))
    outcome = tick(db)
    assert outcome["outcome"] == "failed" and outcome["http_status"] == 429
    assert abs(seconds_until(db) - 7200) < 60  # the server's 2 hours beat the 1 hour back-off


def test_back_off_doubles_up_to_the_interval(db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_data("boom", status=500)
    configure(db, httpserver.url_for("/v1/report"), retry_base="1 hour", interval="5 hours")
    delays = []
    for _ in range(5):
        tick(db, "telemetry_send_report")
        delays.append(round(seconds_until(db) / 3600, 1))
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    httpserver.clear()
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    tick(db, "telemetry_send_report")
    assert scalar(db, "SELECT failures FROM _telemetry.schedule") == 0
    assert round(seconds_until(db) / 3600, 1) == 5.0
