"""The jitter: this database's share of it is added to each due time, and never more than the option."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from pytest_httpserver import HTTPServer

from tests.extension.job.helpers import answer, configure, seconds_until, tick

HOUR = 3600.0


def test_the_jitter_is_added_to_each_due_time_and_bounded_by_the_option(
    db: psycopg.Connection[Any], httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    configure(db, httpserver.url_for("/v1/report"), interval="24 hours", jitter="1 hour")
    [(drawn,)] = db.execute("SELECT jitter_fraction FROM _telemetry.schedule").fetchall()
    assert 0 <= drawn < 1  # this database's share, drawn at CREATE EXTENSION
    # The share a database may draw, from none to nearly all: the delay grows with it, up to interval + jitter.
    for fraction in (0.0, 0.5, 0.999):
        db.execute("UPDATE _telemetry.schedule SET jitter_fraction = %s", [fraction])
        assert tick(db, "telemetry_send_report")["outcome"] == "sent"
        delay = seconds_until(db)
        assert abs(delay - (24 * HOUR + fraction * HOUR)) < 60, (fraction, delay)
        assert delay < 25 * HOUR
    # The first report: the grace period plus the share of the jitter.
    db.execute("UPDATE _telemetry.schedule SET next_due = NULL, jitter_fraction = 0.75")
    configure(db, httpserver.url_for("/v1/report"), grace="2 hours", jitter="4 hours")
    [(created, due)] = db.execute(
        "SELECT i.created_at, s.next_due FROM _telemetry.instance i, telemetry_status s"
    ).fetchall()
    assert abs((due - created).total_seconds() - (2 * HOUR + 0.75 * 4 * HOUR)) < 60, (created, due)
    assert due > datetime.now(UTC)
