"""POST /v1/report: what is accepted, and the 4xx for everything else."""

from __future__ import annotations

import json
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
        (make_report(os_name="Linux\u0000"), "strings must not contain NUL characters"),
        (make_report(related_extensions={"a": {"b": {"c": [[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}}}), "nested deeper"),
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


def test_a_lone_surrogate_is_422(collector: Collector) -> None:
    body = json.dumps(make_report()).replace('"Linux"', '"\\ud800"', 1).encode()
    response = collector.post(data=body)
    assert response.status_code == 422
    assert "surrogate" in response.json()["message"]


def test_extra_keys_are_kept(collector: Collector, collector_db: psycopg.Connection[Any]) -> None:
    report = make_report(future_metric={"x": 1})
    assert collector.post(report).status_code == 200
    assert stored(collector_db)[0][6]["future_metric"] == {"x": 1}


def test_other_methods_and_paths_answer_json(collector: Collector) -> None:
    response = collector.get("/v1/report")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    response = collector.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_db_uuid_case_does_not_make_another_database(
    collector: Collector, collector_db: psycopg.Connection[Any]
) -> None:
    db = uuid.uuid4()
    assert collector.post(make_report(db_uuid=str(db).upper())).status_code == 200
    assert collector.post(make_report(db_uuid=str(db))).status_code == 200
    assert collector_db.execute("SELECT count(DISTINCT db_uuid) FROM collector.reports").fetchone() == (1,)
