"""The answer's products against a loopback peer: an old collector's two fields, and hostile answers."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from pytest_httpserver import HTTPServer

import telemetry_protocol as protocol
from tests.cluster import Cluster
from tests.extension.job.helpers import attempts, configure, peer_answers, sent_and_told, telemetry_log_lines, tick
from tests.helpers import EXTENSION_VERSION, release_after, report

NEWER = release_after()


def stored(db: psycopg.Connection[Any]) -> tuple[list[Any], list[Any]]:
    return (
        db.execute("SELECT * FROM _telemetry.versions").fetchall(),
        db.execute("SELECT * FROM _telemetry.latest_version").fetchall(),
    )


def test_an_old_collector_answer_keeps_working(
    db: psycopg.Connection[Any], httpserver: HTTPServer, cluster: Cluster
) -> None:
    """A peer that sends only latest_version and up_to_date (a collector before 0.3.0)."""
    peer_answers(db, httpserver, {"latest_version": NEWER, "up_to_date": False})
    offset = cluster.log_offset()
    outcome = tick(db)
    assert sent_and_told(outcome) == ("sent", NEWER, False)
    rows = db.execute(
        "SELECT product, installed, newest, newest_in_series, security, end_of_life, notes_url, up_to_date"
        " FROM telemetry_versions"
    ).fetchall()
    assert rows == [("telemetry", EXTENSION_VERSION, NEWER, None, None, None, None, False)]
    [warning] = [line for line in telemetry_log_lines(cluster, offset) if "WARNING" in line]
    assert f"version {EXTENSION_VERSION} is installed; the newest release is {NEWER}" in warning
    summary = db.execute("SELECT versions_behind, security_fixes_for FROM telemetry_status").fetchone()
    assert summary == (1, None)


def entry(**overrides: Any) -> dict[str, Any]:
    advice = {
        "product": "telemetry",
        "installed": EXTENSION_VERSION,
        "newest": NEWER,
        "newest_in_series": EXTENSION_VERSION,
        "security": False,
        "security_in_series": False,
        "end_of_life": False,
        "notes_url": "https://example.org/notes",
    }
    return {**advice, **overrides}


def postgresql(db: psycopg.Connection[Any], **overrides: Any) -> dict[str, Any]:
    version = report(db)["postgresql_version"]
    fields = {"product": "postgresql", "installed": version, "newest": version, "newest_in_series": version}
    return entry(**{**fields, **overrides})


HOSTILE: dict[str, Any] = {
    "huge list": lambda db: [postgresql(db)] + [entry(product=f"p{i}") for i in range(protocol.MAX_PRODUCTS)],
    "bad version": lambda db: [entry(newest="1.0; DROP TABLE x")],
    "version with a newline": lambda db: [entry(newest=f"{NEWER}\n")],
    "non-https link": lambda db: [entry(notes_url="http://example.org/notes")],
    "javascript link": lambda db: [entry(notes_url="javascript:alert(1)")],
    "control character in the link": lambda db: [entry(notes_url="https://example.org/\x1b[2J")],
    "control character in a product": lambda db: [entry(product="telemetry\x07")],
    "a product this database does not run": lambda db: [entry(), entry(product="postgis", installed="3.4.2")],
    "another installed version": lambda db: [postgresql(db, installed="9.6.1")],
    "another newest release than latest_version": lambda db: [entry(newest=release_after(NEWER))],
    "a flag that is not a boolean": lambda db: [entry(security="yes")],
    "an unknown key": lambda db: [entry(advice="run this")],
    "not a list": lambda db: {"telemetry": entry()},
    "a product twice": lambda db: [entry(), entry()],
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_answer_stores_nothing_and_logs_one_line(
    case: str, db: psycopg.Connection[Any], httpserver: HTTPServer, cluster: Cluster
) -> None:
    products = HOSTILE[case](db)
    peer_answers(db, httpserver, {"latest_version": NEWER, "up_to_date": False, "products": products})
    offset = cluster.log_offset()
    outcome = tick(db)
    assert outcome["outcome"] == "failed" and outcome["error"].startswith("invalid answer: "), outcome
    assert stored(db) == ([], [])
    [audit] = attempts(db)
    assert audit["latest_version"] is None and audit["error"] == outcome["error"]
    lines = telemetry_log_lines(cluster, offset)
    assert len(lines) == 1 and "LOG:" in lines[0] and "report not sent" in lines[0], lines
    assert "\x1b" not in lines[0] and "\x07" not in lines[0]


def test_a_valid_answer_replaces_the_last_one(db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    """Products the vendor no longer lists leave the view with the next answer."""
    configure(db, httpserver.url_for("/v1/report"))
    httpserver.expect_ordered_request("/v1/report").respond_with_json(
        {"latest_version": NEWER, "products": [entry(), postgresql(db, security=True)]}
    )
    httpserver.expect_ordered_request("/v1/report").respond_with_json(
        {"latest_version": EXTENSION_VERSION, "products": []}
    )
    tick(db, "telemetry_send_report")
    assert [r[0] for r in db.execute("SELECT product FROM telemetry_versions").fetchall()] == [
        "telemetry",
        "postgresql",
    ]
    tick(db, "telemetry_send_report")
    assert db.execute("SELECT product, newest, up_to_date FROM telemetry_versions").fetchall() == [
        ("telemetry", EXTENSION_VERSION, True)
    ]
