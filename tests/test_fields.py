"""The field dictionary, the declarations, the report and the protocol agree."""

from __future__ import annotations

from pathlib import Path

from telemetry import protocol
from telemetry.fields_doc import render
from telemetry.metrics import METRICS

from tests.helpers import report

DOC = Path(__file__).resolve().parent.parent / "docs" / "report-fields.md"

JSON_TYPES = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "string or null": (str, type(None)),
}


def documented_keys() -> list[str]:
    return [line.split("`")[1] for line in DOC.read_text().splitlines() if line.startswith("| `")]


def test_report_keys_are_exactly_the_documented_keys(db) -> None:
    keys = set(report(db))
    assert keys == set(documented_keys()), "the report and docs/report-fields.md disagree"
    assert keys == {m.key for m in METRICS}


def test_dictionary_is_generated_from_the_declarations() -> None:
    assert DOC.read_text() == render(), "run: cd python && python -m telemetry.fields_doc > ../docs/report-fields.md"


def test_values_have_their_documented_json_type(db) -> None:
    r = report(db)
    for metric in METRICS:
        value = r[metric.key]
        allowed = JSON_TYPES[metric.json_type]
        assert isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool)), metric.key
        assert isinstance(metric.example, allowed), metric.key


def test_report_satisfies_the_collector_protocol(db) -> None:
    protocol.validate_report(report(db))
