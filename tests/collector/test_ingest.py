"""POST /v1/report: what is accepted, and the 4xx for everything else."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import psycopg
import pytest

import telemetry_protocol as protocol
from tests.collector.helpers import Collector, make_report


def stored(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT db_uuid::text, exported_db_uuid::text, extension_version, postgresql_version, os_name, country, report"
        " FROM collector.reports"
    ).fetchall()


def test_a_valid_report_is_stored_and_answered(collector: Collector, collector_db: psycopg.Connection[Any]) -> None:
    report = make_report(extension_version="0.1.0")
    response = collector.post(report, headers={"User-Agent": protocol.user_agent("0.1.0")})

    assert response.status_code == 200, response.text
    answer = protocol.parse_answer(response.content)  # the extension's own parser accepts it
    assert answer.latest_version == "0.1.0"
    [row] = stored(collector_db)
    assert row[:6] == (report["db_uuid"], report["exported_db_uuid"], "0.1.0", "15.20", "Linux", None)
    assert row[6] == report  # the whole report, as jsonb


def test_the_exact_bytes_the_extension_sends_are_accepted(collector: Collector) -> None:
    body = json.dumps(make_report(), sort_keys=True, separators=(",", ":")).encode()
    assert collector.post(data=body).status_code == 200


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "body_too_large"),
        (b"[1, 2]", "not_an_object"),
        (b'"report"', "not_an_object"),
        (b"null", "not_an_object"),
    ],
    ids=["empty", "garbage", "nan", "not-utf8", "deep-and-big", "array", "string", "null"],
)
def test_not_a_json_object_is_400(
    collector: Collector, collector_db: psycopg.Connection[Any], body: bytes, error: str
) -> None:
    response = collector.post(data=body)

    expected = 413 if error == "body_too_large" else 400
    assert response.status_code == expected
    assert response.json()["error"] == error
    assert response.json()["message"]
    assert stored(collector_db) == []


def test_deep_nesting_under_the_limit_is_400(collector: Collector) -> None:
    response = collector.post(data=b"[" * 20_000 + b"]" * 20_000)
    assert response.status_code == 400
    assert response.json()["error"] in {"invalid_json", "not_an_object"}


def test_a_body_over_the_limit_is_413(start_collector: Any, collector_db: psycopg.Connection[Any]) -> None:
    collector = start_collector(max_body_bytes=2048)
    big = make_report(related_extensions={f"ext_{i}": False for i in range(200)})
    assert len(json.dumps(big)) > 2048

    response = collector.post(big)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"

    # Chunked, without Content-Length: cut off while reading, not buffered whole.
    def chunks() -> Any:
        for _ in range(1000):
            yield b" " * 1024

    response = collector.post(data=chunks())
    assert response.status_code == 413
    assert stored(collector_db) == []
    assert collector.post(make_report()).status_code == 200  # small ones still pass


def test_wrong_content_type_is_415(collector: Collector) -> None:
    response = collector.post(data=json.dumps(make_report()), headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def _without(key: str) -> dict[str, Any]:
    report = make_report()
    del report[key]
    return report


@pytest.mark.parametrize(
    ("report", "message"),
    [
        (_without("db_uuid"), "missing key: db_uuid"),
        (_without("related_extensions"), "missing key: related_extensions"),
        (make_report(data_volume="12"), "wrong type for data_volume: expected int"),
        (make_report(data_volume=True), "wrong type for data_volume: expected int"),
        (make_report(report_format_version=1.5), "wrong type for report_format_version: expected int"),
        (make_report(os_name=None), "wrong type for os_name: expected str"),
        (make_report(related_extensions=[]), "wrong type for related_extensions: expected dict"),
        (make_report(db_uuid="not-a-uuid"), "db_uuid must be a UUID"),
        (make_report(exported_db_uuid="42"), "exported_db_uuid must be a UUID"),
        (make_report(os_name="Linux\u0000"), "os_name holds characters it may not"),
        (make_report(data_volume=-1), "data_volume must be an integer from 0 to"),
        (make_report(data_volume=2**53), "data_volume must be an integer from 0 to"),
        (make_report(report_format_version=999), "report_format_version is not a known one"),
        (make_report(num_hypertables=1.0), "num_hypertables must be an integer"),
        (make_report(install_method="my laptop"), "install_method must be one of its documented values"),
        (make_report(extension_version="not a version"), "extension_version must be a PEP 440 public version"),
        (make_report(extension_version="1" * 65), "extension_version is longer than 64 characters"),
        (make_report(postgresql_version="15.2x"), "postgresql_version holds characters it may not"),
        (make_report(installed_time="yesterday"), "installed_time must be an ISO 8601 timestamp"),
        (make_report(db_uuid="{" + str(uuid.uuid4()) + "}"), "db_uuid must be a UUID"),
        (make_report(related_extensions={"postgis": "yes"}), "related_extensions.* must be true or false"),
        (make_report(relations={"tables": {"heap_size": -8192}}), "relations.tables.heap_size must be an integer"),
        (make_report(relations={"tables": 5}), "relations.tables must be an object"),
        (make_report(vendor_metrics={"myext": "42"}), "vendor_metrics.* must be a finite number"),
        (make_report(uptime_days={"error": "Robert'); DROP TABLE"}), "an error marker holds an unknown code"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_missing_keys_and_wrong_types_are_422(
    collector: Collector, collector_db: psycopg.Connection[Any], report: dict[str, Any], message: str
) -> None:
    response = collector.post(report)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_report"
    assert message in response.json()["message"]
    assert stored(collector_db) == []


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"1" + b"0" * 5000])
def test_numbers_json_cannot_carry_are_refused_in_documented_keys(collector: Collector, number: bytes) -> None:
    body = json.dumps(make_report(data_volume=0)).encode().replace(b'"data_volume": 0', b'"data_volume": ' + number)
    response = collector.post(data=body)
    assert response.status_code in {400, 422}
    assert response.json()["error"] in {"invalid_json", "invalid_report"}


def test_a_lone_surrogate_is_422(collector: Collector) -> None:
    body = json.dumps(make_report()).replace('"Linux"', '"\\ud800"', 1).encode()
    response = collector.post(data=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_report"


def test_only_dictionary_keys_are_stored(
    start_collector: Any, collector_db: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    collector = start_collector(counters_log_seconds=0.2)
    report = make_report(
        hostname="db1.example.com",
        future_metric={"x": 1},
        huge="HUGE",
        deep={"a": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]},
        related_extensions={"pg_cron": True, "my_secret_extension": True},
        relations={"tables": {"num_relations": 3, "owner": "alice"}},
        access_methods={"heap": {"num_relations": 2, "pages": 10}, "acme_am": {"num_relations": 1, "pages": 1}},
        extensions={"versions": {"postgis": "3.4.2", "acme": "1.0"}, "num_other": 1},
        vendor_metrics={"widgets": 42, "shop": {"orders": 7, "Owner Name": 1}, "failed": {"error": "timeout"}},
        uptime_days={"error": "42501"},
    )

    response = collector.post(data=json.dumps(report).replace('"HUGE"', "1e200000").encode())

    assert response.status_code == 200, response.text
    [row] = stored(collector_db)
    kept = row[6]
    for key in ("hostname", "future_metric", "huge", "deep"):
        assert key not in kept
    assert kept["related_extensions"] == {"pg_cron": True}
    assert kept["relations"] == {"tables": {"num_relations": 3}}
    assert kept["access_methods"] == {"heap": {"num_relations": 2, "pages": 10}}
    assert kept["extensions"] == {"versions": {"postgis": "3.4.2"}, "num_other": 1}
    assert kept["vendor_metrics"] == {"widgets": 42, "shop": {"orders": 7}, "failed": {"error": "timeout"}}
    assert kept["uptime_days"] == {"error": "42501"}  # a failed metric's marker is protocol too
    for key in make_report():
        if key != "related_extensions":
            assert kept[key] == report[key], key
    # Counted in a log line that carries no client data.
    deadline = time.monotonic() + 5
    while not any("dropped_keys 9" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("telemetry_collector")]
    assert any("dropped_keys 9, over_new_database_budget 0, reports_with_dropped_keys 1" in line for line in lines)
    assert not any(word in line for line in lines for word in ("hostname", "example.com", "acme", "alice"))


def test_uuids_are_stored_canonical(collector: Collector, collector_db: psycopg.Connection[Any]) -> None:
    db = uuid.uuid4()
    assert collector.post(make_report(db_uuid=str(db).upper())).status_code == 200
    assert stored(collector_db)[0][6]["db_uuid"] == str(db)


@pytest.mark.parametrize("path", ["/v1/nothing", "/v1/fleet", "/fleet.js", "/index.html", "/metrics"])
def test_the_edge_serves_reports_health_and_its_landing_page_only(collector: Collector, path: str) -> None:
    response = collector.get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_other_methods_answer_json(collector: Collector) -> None:
    response = collector.get("/v1/report")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert collector.get("/healthz").json() == {"status": "ok"}


def test_db_uuid_case_does_not_make_another_database(
    collector: Collector, collector_db: psycopg.Connection[Any]
) -> None:
    db = uuid.uuid4()
    assert collector.post(make_report(db_uuid=str(db).upper())).status_code == 200
    assert collector.post(make_report(db_uuid=str(db))).status_code == 200
    assert collector_db.execute("SELECT count(DISTINCT db_uuid) FROM collector.reports").fetchone() == (1,)
