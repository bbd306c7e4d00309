"""The field dictionary, the declarations, the report and the protocol agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

import telemetry_protocol as protocol
from telemetry_extension.fields_doc import documented_paths, render
from telemetry_extension.metrics import METRICS
from telemetry_extension.metrics.runner import is_marker
from tests.helpers import report

DOC = Path(__file__).resolve().parents[2] / "docs" / "report-fields.md"

NUMBER = (int, float)
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "string or null": (str, type(None)),
    "integer or null": (int, type(None)),
    "number, null or object": (*NUMBER, type(None), dict),
}


def documented_keys() -> list[str]:
    return [line.split("`")[1] for line in DOC.read_text().splitlines() if line.startswith("| `")]


def _has_type(value: Any, json_type: str) -> bool:
    allowed = JSON_TYPES[json_type]
    return isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool))


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("\\.".join("[^.]+" if part == "*" else re.escape(part) for part in path.split(".")))


def _leaves(
    value: Any, path: str, patterns: list[tuple[str, str, re.Pattern[str]]], seen: set[str], problems: list[str]
) -> None:
    match = next(((doc, json_type) for doc, json_type, rx in patterns if rx.fullmatch(path)), None)
    if match is not None and match[1] != "object":
        seen.add(match[0])
        if not _has_type(value, match[1]):
            problems.append(f"{path}: {value!r} is not {match[1]}")
    elif isinstance(value, dict):
        if match is not None:
            seen.add(match[0])
        for key, item in value.items():
            _leaves(item, f"{path}.{key}", patterns, seen, problems)
    else:
        problems.append(f"{path}: not in the field dictionary")


def test_report_keys_are_exactly_the_documented_keys(db: psycopg.Connection[Any]) -> None:
    keys = set(report(db))
    assert keys == {key for key in documented_keys() if "." not in key}, "the report and report-fields.md disagree"
    assert keys == {m.key for m in METRICS}


def test_every_value_in_the_report_is_documented_and_every_documented_value_is_there(
    db: psycopg.Connection[Any],
) -> None:
    """Dictionary ⇄ report, down to the leaves of every object."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY, body text)")
    db.execute("CREATE TABLE parted (id int) PARTITION BY RANGE (id)")
    db.execute("CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10)")
    db.execute("SELECT telemetry_register_metric('fields_test', 'SELECT 1 AS one, 2.5 AS two', 'Two numbers.')")
    r = report(db)
    paths = documented_paths()
    assert [p for p, _ in paths] == documented_keys()
    patterns = [(p, t, _pattern(p)) for p, t in paths]
    seen: set[str] = set()
    problems: list[str] = []
    for key, value in r.items():
        assert not is_marker(value), f"{key} failed: {value}"
        _leaves(value, key, patterns, seen, problems)
    assert problems == []
    missing = {p for p, t in paths if "*" not in p and t != "object"} - seen
    assert missing == set(), "documented but absent from the report"
    assert r["vendor_metrics"]["fields_test"] == {"one": 1, "two": 2.5}


def test_dictionary_is_generated_from_the_declarations() -> None:
    assert DOC.read_text() == render(), (
        "run: cd python && python -m telemetry_extension.fields_doc > ../docs/report-fields.md"
    )


def test_values_have_their_documented_json_type(db: psycopg.Connection[Any]) -> None:
    r = report(db)
    for metric in METRICS:
        value = r[metric.key]
        assert _has_type(value, metric.json_type), metric.key
        assert _has_type(metric.example, metric.json_type), metric.key


def test_declarations_are_well_formed() -> None:
    keys = [m.key for m in METRICS]
    assert len(keys) == len(set(keys))
    for metric in METRICS:
        assert metric.json_type in JSON_TYPES and metric.summary and metric.source
        assert metric.level == "basic"
        assert metric.timeout_ms is None or 0 < metric.timeout_ms <= 60_000
        assert metric.required == (metric.key in protocol.REQUIRED_REPORT_FIELDS)
        for field in metric.fields:
            assert field.json_type in JSON_TYPES and field.summary, f"{metric.key}.{field.path}"
        assert metric.fields == () or metric.json_type == "object"


def test_report_satisfies_the_collector_protocol(db: psycopg.Connection[Any]) -> None:
    protocol.validate_report(report(db))
