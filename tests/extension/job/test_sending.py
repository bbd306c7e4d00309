"""The job's happy path against a loopback peer: grace, send, the answer stored and told, the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from packaging.version import Version
from pytest_httpserver import HTTPServer

import telemetry_protocol as protocol
from tests.cluster import Cluster
from tests.extension.job.helpers import (
    answer,
    attempts,
    configure,
    peer_answers,
    seconds_until,
    telemetry_log_lines,
    tick,
)
from tests.helpers import EXTENSION_VERSION, one_row, release_after, scalar

# Newer by release order, older by string order: 0.10.0 after 0.1.0.
_MAJOR, _MINOR = Version(EXTENSION_VERSION).release[:2]
NEWER = f"{_MAJOR}.{_MINOR + 9}.0"


def test_first_report_waits_for_the_grace_period(db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    db.execute("SELECT telemetry_set_option('endpoint', %s)", [httpserver.url_for("/v1/report")])
    outcome = tick(db)
    assert outcome["outcome"] == "not_due"
    due = datetime.fromisoformat(outcome["next_due"])
    assert (due - datetime.now(UTC)).total_seconds() > 23 * 3600  # 24 h grace, jitter on top
    assert httpserver.log == []


def test_due_tick_sends_exactly_what_get_report_shows(
    db: psycopg.Connection[Any], httpserver: HTTPServer, cluster: Cluster
) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer(EXTENSION_VERSION))
    configure(db, httpserver.url_for("/v1/report"))
    shown = scalar(db, "SELECT get_report()::text")  # what psql shows, too
    offset = cluster.log_offset()
    outcome = tick(db)
    assert outcome["outcome"] == "sent" and outcome["http_status"] == 200 and outcome["up_to_date"] is True
    [(request, _)] = httpserver.log
    assert request.headers["User-Agent"] == f"telemetry-extension/{EXTENSION_VERSION}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_data() == shown.encode()  # byte for byte
    [audit] = attempts(db)
    assert audit["body"].encode() == request.get_data()  # the audit keeps the exact bytes
    assert audit["outcome"] == "sent" and audit["http_status"] == 200 and audit["trigger"] == "job"
    assert audit["endpoint"] == httpserver.url_for("/v1/report") and audit["latest_version"] == EXTENSION_VERSION
    assert abs(seconds_until(db) - 24 * 3600) < 60
    # Up to date: nothing above LOG.
    assert not [line for line in telemetry_log_lines(cluster, offset) if "WARNING" in line]
    # Nothing is due any more: the next tick does no I/O.
    assert tick(db)["outcome"] == "not_due"
    assert len(httpserver.log) == 1


def test_newer_release_is_stored_and_warned_once(
    db: psycopg.Connection[Any], httpserver: HTTPServer, cluster: Cluster
) -> None:
    peer_answers(db, httpserver, {"latest_version": NEWER, "up_to_date": False})
    offset = cluster.log_offset()
    assert tick(db)["outcome"] == "sent"
    stored = db.execute(
        "SELECT latest_version, installed_version, up_to_date, collector_up_to_date FROM _telemetry.latest_version"
    ).fetchone()
    assert stored == (NEWER, EXTENSION_VERSION, False, False)
    warnings = [line for line in telemetry_log_lines(cluster, offset) if "WARNING" in line]
    assert len(warnings) == 1
    assert f"{EXTENSION_VERSION} is installed; the newest release is {NEWER}" in warnings[0]
    status = db.execute("SELECT newest_version, up_to_date, last_outcome FROM telemetry_status").fetchone()
    assert status == (NEWER, False, "sent")


@pytest.mark.parametrize(
    ("latest", "up_to_date"),
    [
        (EXTENSION_VERSION, True),
        ("0.0.9", True),
        (f"{EXTENSION_VERSION}rc1", True),
        (f"{release_after(step='patch')}rc1", True),  # a newer pre-release does not nag a final release
        (release_after(), False),
    ],
)
def test_version_comparison_is_by_release_order(
    db: psycopg.Connection[Any], httpserver: HTTPServer, latest: str, up_to_date: bool
) -> None:
    peer_answers(db, httpserver, {"latest_version": latest})
    assert tick(db)["up_to_date"] is up_to_date


def test_protocol_orders_versions_numerically() -> None:
    assert protocol.make_answer("0.10.0", "0.9.0")["up_to_date"] is False
    assert protocol.make_answer("0.9.0", "0.10.0")["up_to_date"] is True
    assert protocol.make_answer("1.0.0", "1.0.0rc1")["up_to_date"] is False


@pytest.mark.parametrize(
    ("installed", "latest", "up_to_date"),
    [
        ("0.2.0", "0.3.0rc1", True),  # final installed: a newer pre-release is not news
        ("0.2.0", "0.3.0.dev1", True),
        ("0.2.0", "0.3.0", False),
        ("0.3.0rc1", "0.3.0rc2", False),  # pre-release installed: told of a newer pre-release
        ("0.3.0rc1", "0.3.0", False),  # ... and of the final
        ("0.3.0rc1", "0.2.0", True),
        ("0.3.0", "0.3.0rc2", True),
    ],
)
def test_pre_releases_nag_only_pre_release_users(installed: str, latest: str, up_to_date: bool) -> None:
    assert protocol.is_up_to_date(Version(installed), Version(latest)) is up_to_date
    assert protocol.make_answer(latest, installed)["up_to_date"] is up_to_date


def test_send_report_ignores_the_schedule(db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    db.execute("SELECT telemetry_set_option('endpoint', %s)", [httpserver.url_for("/v1/report")])
    assert tick(db)["outcome"] == "not_due"  # still in the grace period
    assert tick(db, "telemetry_send_report")["outcome"] == "sent"
    assert attempts(db)[0]["trigger"] == "manual"


def test_status_view_at_a_glance(db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_data("oops", status=500)
    configure(db, httpserver.url_for("/v1/report"))
    tick(db)
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    status = cur.execute("SELECT * FROM telemetry_status").fetchone()
    assert status is not None
    assert status["metrics_level"] == "basic" and status["metrics_level_source"] == "default"
    assert status["endpoint"] == httpserver.url_for("/v1/report")
    assert status["last_outcome"] == "failed" and status["last_error"] == "HTTP 500"
    assert status["last_attempt"] is not None and status["last_success"] is None
    assert status["next_due"] > status["last_attempt"]
    assert status["installed_version"] == EXTENSION_VERSION and status["newest_version"] is None


def test_audit_trail_is_bounded(db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    peer_answers(db, httpserver, answer())
    db.execute("""INSERT INTO _telemetry.attempts (started_at, duration_ms, trigger, endpoint, body, outcome)
                  SELECT now() - interval '100 days', 1, 'job', 'http://x/', '{}', 'sent'
                    FROM generate_series(1, 10)""")
    db.execute("""INSERT INTO _telemetry.attempts (started_at, duration_ms, trigger, endpoint, body, outcome)
                  SELECT now() - interval '1 day', 1, 'job', 'http://x/', '{}', 'sent'
                    FROM generate_series(1, 1005)""")
    tick(db, "telemetry_send_report")
    count, oldest = one_row(
        db, "SELECT count(*), min(started_at) > now() - interval '90 days' FROM _telemetry.attempts"
    )
    assert count == 1000 and oldest
    assert attempts(db)[-1]["trigger"] == "manual"
