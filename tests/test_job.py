"""The reporting job against real loopback peers: sends, answers, faults, locks, audit, off."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import trustme
from pytest_httpserver import HTTPServer
from telemetry import protocol
from werkzeug import Response

from tests import peers
from tests.cluster import Cluster
from tests.helpers import VERSION, Notices, report

DEADLINE = 2  # seconds, set as the job's deadline option in these tests


def configure(conn: psycopg.Connection, endpoint: str, **options: str) -> None:
    settings = {"endpoint": endpoint, "grace": "0", "jitter": "0", "deadline": f"{DEADLINE} s", **options}
    for name, value in settings.items():
        conn.execute("SELECT set_telemetry_option(%s, %s)", [name, value])


def tick(conn: psycopg.Connection, function: str = "run_job") -> dict[str, Any]:
    row = conn.execute(f"SELECT {function}()").fetchone()
    assert row is not None
    return row[0]


def attempts(conn: psycopg.Connection) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute("SELECT * FROM _telemetry.attempts ORDER BY id").fetchall()


def seconds_until(conn: psycopg.Connection, column: str = "next_due") -> float:
    return conn.execute(
        f"SELECT extract(epoch FROM {column} - clock_timestamp())::float8 FROM _telemetry.schedule"
    ).fetchone()[0]


def telemetry_log_lines(cluster: Cluster, offset: int) -> list[str]:
    return [line for line in cluster.log_since(offset).splitlines() if "telemetry:" in line]


def answer(latest: str = VERSION) -> dict[str, Any]:
    return {"latest_version": latest, "up_to_date": latest == VERSION}


# ---- the happy path -----------------------------------------------------------------


def test_first_report_waits_for_the_grace_period(db, httpserver: HTTPServer) -> None:
    db.execute("SELECT set_telemetry_option('endpoint', %s)", [httpserver.url_for("/v1/report")])
    outcome = tick(db)
    assert outcome["outcome"] == "not_due"
    due = datetime.fromisoformat(outcome["next_due"])
    assert (due - datetime.now(UTC)).total_seconds() > 23 * 3600  # 24 h grace, jitter on top
    assert httpserver.log == []


def test_due_tick_sends_exactly_what_get_report_shows(db, httpserver: HTTPServer, cluster: Cluster) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer(VERSION))
    configure(db, httpserver.url_for("/v1/report"))
    shown = report(db)
    offset = cluster.log_offset()
    outcome = tick(db)
    assert outcome["outcome"] == "sent" and outcome["http_status"] == 200 and outcome["up_to_date"] is True
    [(request, _)] = httpserver.log
    assert request.headers["User-Agent"] == f"telemetry-extension/{VERSION}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == shown
    [audit] = attempts(db)
    assert audit["body"].encode() == request.get_data()  # the audit keeps the exact bytes
    assert audit["outcome"] == "sent" and audit["http_status"] == 200 and audit["trigger"] == "job"
    assert audit["endpoint"] == httpserver.url_for("/v1/report") and audit["latest_version"] == VERSION
    assert abs(seconds_until(db) - 24 * 3600) < 60
    # Up to date: nothing above LOG.
    assert not [line for line in telemetry_log_lines(cluster, offset) if "WARNING" in line]
    # Nothing is due any more: the next tick does no I/O.
    assert tick(db)["outcome"] == "not_due"
    assert len(httpserver.log) == 1


def test_newer_release_is_stored_and_warned_once(db, httpserver: HTTPServer, cluster: Cluster) -> None:
    httpserver.expect_request("/v1/report").respond_with_json({"latest_version": "0.10.0", "up_to_date": False})
    configure(db, httpserver.url_for("/v1/report"))
    offset = cluster.log_offset()
    assert tick(db)["outcome"] == "sent"
    stored = db.execute(
        "SELECT latest_version, installed_version, up_to_date, collector_up_to_date FROM _telemetry.latest_version"
    ).fetchone()
    assert stored == ("0.10.0", VERSION, False, False)
    warnings = [line for line in telemetry_log_lines(cluster, offset) if "WARNING" in line]
    assert len(warnings) == 1
    assert f"{VERSION} is installed; the newest release is 0.10.0" in warnings[0]
    status = db.execute("SELECT newest_version, up_to_date, last_outcome FROM telemetry_status").fetchone()
    assert status == ("0.10.0", False, "sent")


_MAJOR, _MINOR, _PATCH = (int(part) for part in VERSION.split("."))


@pytest.mark.parametrize(("latest", "up_to_date"), [
    (VERSION, True), ("0.0.9", True), (f"{VERSION}rc1", True),
    (f"{_MAJOR}.{_MINOR}.{_PATCH + 1}rc1", False), (f"{_MAJOR}.{_MINOR + 1}.0", False),
])
def test_version_comparison_is_by_release_order(db, httpserver: HTTPServer, latest: str, up_to_date: bool) -> None:
    httpserver.expect_request("/v1/report").respond_with_json({"latest_version": latest})
    configure(db, httpserver.url_for("/v1/report"))
    assert tick(db)["up_to_date"] is up_to_date


def test_protocol_orders_versions_numerically() -> None:
    assert protocol.make_answer("0.10.0", "0.9.0")["up_to_date"] is False
    assert protocol.make_answer("0.9.0", "0.10.0")["up_to_date"] is True
    assert protocol.make_answer("1.0.0", "1.0.0rc1")["up_to_date"] is False


def test_send_report_ignores_the_schedule(db, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    db.execute("SELECT set_telemetry_option('endpoint', %s)", [httpserver.url_for("/v1/report")])
    assert tick(db)["outcome"] == "not_due"  # still in the grace period
    assert tick(db, "send_report")["outcome"] == "sent"
    assert attempts(db)[0]["trigger"] == "manual"


def test_status_view_at_a_glance(db, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_data("oops", status=500)
    configure(db, httpserver.url_for("/v1/report"))
    tick(db)
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    status = cur.execute("SELECT * FROM telemetry_status").fetchone()
    assert status["metrics_level"] == "basic" and status["metrics_level_source"] == "default"
    assert status["endpoint"] == httpserver.url_for("/v1/report")
    assert status["last_outcome"] == "failed" and status["last_error"] == "HTTP 500"
    assert status["last_attempt"] is not None and status["last_success"] is None
    assert status["next_due"] > status["last_attempt"]
    assert status["installed_version"] == VERSION and status["newest_version"] is None


# ---- faults ---------------------------------------------------------------------------


@pytest.fixture
def tls_server(pg_tree) -> Iterator[tuple[HTTPServer, str]]:
    """An HTTPS peer whose certificate no system CA signed; and a CA file that trusts it."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    server.expect_request("/v1/report").respond_with_json(answer())
    ca_file = pg_tree.tempdir("ca-") / "ca.pem"  # readable by the server
    ca.cert_pem.write_to_path(str(ca_file))
    ca_file.chmod(0o644)
    try:
        yield server, str(ca_file)
    finally:
        server.stop()


def _http_fault(httpserver: HTTPServer, kind: str) -> tuple[str, str]:
    url = httpserver.url_for("/v1/report")
    if kind == "500":
        httpserver.expect_request("/v1/report").respond_with_data("boom", status=500)
        return url, "HTTP 500"
    if kind == "invalid json":
        httpserver.expect_request("/v1/report").respond_with_data("{not json", content_type="application/json")
        return url, "invalid answer: answer is not valid JSON"
    if kind == "invalid version":
        httpserver.expect_request("/v1/report").respond_with_json({"latest_version": "banana'; DROP TABLE x"})
        return url, "invalid answer: invalid version string"
    if kind == "100 MB with length":
        body = b"x" * (100 * 1024 * 1024)
        httpserver.expect_request("/v1/report").respond_with_data(body, content_type="application/json")
        return url, "answer of 104857600 bytes refused"
    if kind == "redirect to another host":
        other = url.replace("localhost", "127.0.0.1")
        httpserver.expect_request("/v1/report").respond_with_response(
            Response(status=307, headers={"Location": other}))
        return url, "redirect to another location not followed"
    raise AssertionError(kind)


RAW_FAULTS = {
    "no answer": (peers.hang, "no complete answer within the deadline"),
    "slow drip": (peers.slow_drip, "no complete answer within the deadline"),
    "100 MB chunked": (peers.huge_chunked, "answer larger than 65536 bytes refused"),
}
HTTP_FAULTS = ["500", "invalid json", "invalid version", "100 MB with length", "redirect to another host"]


def _assert_failure_handled(db, cluster: Cluster, offset: int, started: float, outcome: dict[str, Any],
                            error: str) -> None:
    elapsed = time.monotonic() - started
    assert outcome["outcome"] == "failed"
    assert outcome["error"].startswith(error)
    assert elapsed < DEADLINE + 1, f"tick took {elapsed:.1f}s"  # bounded: the deadline plus one second
    [audit] = attempts(db)
    assert audit["outcome"] == "failed" and audit["error"].startswith(error)
    assert db.execute("SELECT count(*) FROM _telemetry.latest_version").fetchone()[0] == 0
    lines = telemetry_log_lines(cluster, offset)
    assert len(lines) == 1 and "report not sent" in lines[0], lines
    assert db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 0
    assert db.execute("SELECT failures FROM _telemetry.schedule").fetchone()[0] == 1
    assert abs(seconds_until(db) - 3600) < 60  # back-off: retry_base, 1 hour


@pytest.mark.parametrize("kind", HTTP_FAULTS)
def test_http_faults_are_recorded_and_contained(db, cluster: Cluster, httpserver: HTTPServer, kind: str) -> None:
    url, error = _http_fault(httpserver, kind)
    configure(db, url)
    offset, started = cluster.log_offset(), time.monotonic()
    _assert_failure_handled(db, cluster, offset, started, tick(db), error)


@pytest.mark.parametrize("kind", list(RAW_FAULTS))
def test_raw_faults_are_recorded_and_contained(db, cluster: Cluster, kind: str) -> None:
    behave, error = RAW_FAULTS[kind]
    peer = peers.RawPeer(behave)
    try:
        configure(db, peer.url)
        offset, started = cluster.log_offset(), time.monotonic()
        _assert_failure_handled(db, cluster, offset, started, tick(db), error)
    finally:
        peer.close()


def test_connection_refused(db, cluster: Cluster) -> None:
    configure(db, peers.closed_port())
    offset, started = cluster.log_offset(), time.monotonic()
    _assert_failure_handled(db, cluster, offset, started, tick(db), "connection failed")


def test_self_signed_certificate_fails_then_ca_file_trusts_it(db, cluster: Cluster, tls_server) -> None:
    server, ca_file = tls_server
    configure(db, server.url_for("/v1/report"))
    offset, started = cluster.log_offset(), time.monotonic()
    _assert_failure_handled(db, cluster, offset, started, tick(db), "TLS verification failed")
    db.execute("SELECT set_telemetry_option('ca_file', %s)", [ca_file])
    assert tick(db, "send_report")["outcome"] == "sent"


def test_retry_after_is_respected(db, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_data("slow down", status=429,
                                                              headers={"Retry-After": "7200"})
    configure(db, httpserver.url_for("/v1/report"))
    outcome = tick(db)
    assert outcome["outcome"] == "failed" and outcome["http_status"] == 429
    assert abs(seconds_until(db) - 7200) < 60  # the server's 2 hours beat the 1 hour back-off


def test_back_off_doubles_up_to_the_interval(db, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_data("boom", status=500)
    configure(db, httpserver.url_for("/v1/report"), retry_base="1 hour", interval="5 hours")
    delays = []
    for _ in range(5):
        tick(db, "send_report")
        delays.append(round(seconds_until(db) / 3600, 1))
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    httpserver.clear()
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    tick(db, "send_report")
    assert db.execute("SELECT failures FROM _telemetry.schedule").fetchone()[0] == 0
    assert round(seconds_until(db) / 3600, 1) == 5.0


# ---- concurrency, locks, cancel, shutdown -----------------------------------------------------


def _in_thread(cluster: Cluster, dbname: str, sql: str) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        try:
            with cluster.connect(dbname) as conn:
                result["pid"] = conn.info.backend_pid
                ready.set()
                started = time.monotonic()
                try:
                    result["value"] = conn.execute(sql).fetchone()[0]
                except psycopg.Error as exc:
                    result["error"] = exc
                result["seconds"] = time.monotonic() - started
        except psycopg.Error as exc:
            result.setdefault("error", exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run)
    thread.start()
    ready.wait(10)
    return thread, result


def test_two_ticks_at_once_make_one_send(db, cluster: Cluster, httpserver: HTTPServer) -> None:
    def slow(request):
        time.sleep(1)
        return Response(json.dumps(answer()), content_type="application/json")

    httpserver.expect_request("/v1/report").respond_with_handler(slow)
    configure(db, httpserver.url_for("/v1/report"))
    runs = [_in_thread(cluster, db.info.dbname, "SELECT run_job()") for _ in range(4)]
    for thread, _ in runs:
        thread.join(30)
    outcomes = sorted(result["value"]["outcome"] for _, result in runs)
    assert outcomes.count("sent") == 1, outcomes
    assert set(outcomes) <= {"sent", "busy", "not_due"}
    assert len(httpserver.log) == 1


@contextmanager
def tick_on_hung_peer(cluster: Cluster, conn: psycopg.Connection, deadline: str) -> Iterator[dict[str, Any]]:
    """A tick running in another session, its request hanging at a peer that never answers."""
    peer = peers.RawPeer(peers.hang)
    try:
        configure(conn, peer.url, deadline=deadline)
        thread, result = _in_thread(cluster, conn.info.dbname, "SELECT run_job()")
        while peer.connections == 0:
            time.sleep(0.05)
        yield result
        thread.join(30)
    finally:
        peer.close()


def test_no_table_or_row_lock_is_held_during_the_network_step(db, cluster: Cluster) -> None:
    with tick_on_hung_peer(cluster, db, "5 s") as result:
        held = db.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype IN ('relation', 'tuple')", [result["pid"]]
        ).fetchone()[0]
        assert held == 0
        with db.transaction():
            db.execute("LOCK TABLE _telemetry.schedule, _telemetry.attempts, _telemetry.options,"
                       " _telemetry.instance IN ACCESS EXCLUSIVE MODE NOWAIT")
    assert result["value"]["outcome"] == "failed"


def test_cancel_ends_a_send_at_once(db, cluster: Cluster) -> None:
    with tick_on_hung_peer(cluster, db, "30 s") as result:
        db.execute("SELECT pg_cancel_backend(%s)", [result["pid"]])
    assert isinstance(result["error"], psycopg.errors.QueryCanceled)
    assert result["seconds"] < 5  # far inside the 30 s deadline


def test_fast_shutdown_is_not_held_hostage(pg_tree) -> None:
    c = Cluster(pg_tree, name="shutdown").start()
    try:
        with c.connect() as admin:
            admin.execute("CREATE EXTENSION telemetry CASCADE")
            with tick_on_hung_peer(c, admin, "30 s") as result:
                started = time.monotonic()
                c.stop()  # pg_ctl stop -m fast
                stopped_after = time.monotonic() - started
        assert stopped_after < 5, stopped_after  # far inside the 30 s deadline
        assert isinstance(result["error"], psycopg.errors.AdminShutdown)
    finally:
        c.destroy()


# ---- off means off ---------------------------------------------------------------------------


def test_off_means_no_io_no_log_and_on_again_resumes(db, cluster: Cluster, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    configure(db, httpserver.url_for("/v1/report"))
    db.execute(f'ALTER DATABASE "{db.info.dbname}" SET telemetry.metrics_level = off')
    offset = cluster.log_offset()
    with cluster.connect(db.info.dbname) as conn:
        assert tick(conn) == {"outcome": "disabled", "metrics_level": "off", "metrics_level_source": "database"}
        notices = Notices(conn)
        assert tick(conn, "send_report")["outcome"] == "disabled"
        assert any("nothing sent" in n for n in notices.of("NOTICE"))
    assert httpserver.log == [] and attempts(db) == []
    assert telemetry_log_lines(cluster, offset) == []
    db.execute(f'ALTER DATABASE "{db.info.dbname}" SET telemetry.metrics_level = basic')
    with cluster.connect(db.info.dbname) as conn:
        assert tick(conn)["outcome"] == "sent"
    assert len(httpserver.log) == 1


def test_off_by_environment_blocks_the_job(pg_tree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    c = Cluster(pg_tree, name="envjob", env={"DISABLE_TELEMETRY": "1"}).start()
    try:
        with c.database("envjob") as conn:
            configure(conn, httpserver.url_for("/v1/report"))
            assert tick(conn)["outcome"] == "disabled"
            assert tick(conn, "send_report")["outcome"] == "disabled"
        assert httpserver.log == []
    finally:
        c.destroy()


# ---- who may do what ------------------------------------------------------------------------


def test_unprivileged_role_cannot_send_or_redirect(db, cluster: Cluster) -> None:
    db.execute("CREATE ROLE job_plain LOGIN")
    db.execute("CREATE ROLE job_monitor LOGIN IN ROLE pg_monitor")
    try:
        for user in ("job_plain", "job_monitor"):
            with cluster.connect(db.info.dbname, user=user) as conn:
                for sql in ("SELECT run_job()", "SELECT send_report()",
                            "SELECT set_telemetry_option('endpoint', 'http://127.0.0.1:9/')",
                            "SELECT _telemetry.tick()",
                            "UPDATE _telemetry.options SET value = 'x'"):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(sql)
        with cluster.connect(db.info.dbname, user="job_monitor") as conn:
            assert conn.execute("SELECT metrics_level FROM telemetry_status").fetchone()[0] == "basic"
            assert conn.execute("SELECT count(*) FROM _telemetry.attempts").fetchone()[0] == 0
    finally:
        db.execute("DROP ROLE job_plain")
        db.execute("DROP ROLE job_monitor")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("endpoint", "ftp://127.0.0.1/x", "http:// or https:// URL"),
    ("endpoint", "http://user:secret@127.0.0.1/x", "must not carry credentials"),
    ("endpoint", "not a url", "http:// or https:// URL"),
    ("interval", "0 seconds", "interval must be between"),
    ("deadline", "5 minutes", "deadline must be between"),
    ("ca_file", "relative.pem", "absolute path"),
    ("colour", "blue", "unknown option"),
])
def test_invalid_options_are_refused_and_change_nothing(db, name: str, value: str, message: str) -> None:
    with pytest.raises(psycopg.Error, match=message):
        db.execute("SELECT set_telemetry_option(%s, %s)", [name, value])
    assert db.execute("SELECT count(*) FROM _telemetry.options").fetchone()[0] == 0


def test_audit_trail_is_bounded(db, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    configure(db, httpserver.url_for("/v1/report"))
    db.execute("""INSERT INTO _telemetry.attempts (started_at, duration_ms, trigger, endpoint, body, outcome)
                  SELECT now() - interval '100 days', 1, 'job', 'http://x/', '{}', 'sent'
                    FROM generate_series(1, 10)""")
    db.execute("""INSERT INTO _telemetry.attempts (started_at, duration_ms, trigger, endpoint, body, outcome)
                  SELECT now() - interval '1 day', 1, 'job', 'http://x/', '{}', 'sent'
                    FROM generate_series(1, 1005)""")
    tick(db, "send_report")
    count, oldest = db.execute(
        "SELECT count(*), min(started_at) > now() - interval '90 days' FROM _telemetry.attempts"
    ).fetchone()
    assert count == 1000 and oldest
    assert attempts(db)[-1]["trigger"] == "manual"
