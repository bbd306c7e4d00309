"""The collector's allowlist is the field dictionary, generated, and the extension's real reports pass it whole."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from telemetry_collector.validation import Allowlist
from telemetry_extension.fields_doc import documented_paths, render_collector_allowlist
from tests.helpers import report

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "telemetry_collector"
ALLOWLIST = PACKAGE / "report_fields.json"


def test_the_allowlist_is_generated_from_the_declarations() -> None:
    assert ALLOWLIST.read_text() == render_collector_allowlist(), (
        "run: cd python && python -m telemetry_extension.fields_doc --collector"
        " > telemetry_collector/report_fields.json"
    )


def test_every_documented_path_is_allowed() -> None:
    import json

    assert list(json.loads(ALLOWLIST.read_text())["fields"]) == [path for path, _ in documented_paths()]


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def test_a_real_report_is_stored_whole(db: Any) -> None:
    db.execute("CREATE TABLE t (id int PRIMARY KEY, body text)")
    db.execute("SELECT telemetry_register_metric('fields_test', 'SELECT 1 AS one, 2.5 AS two', 'Two numbers.')")
    db.execute("SELECT telemetry_register_metric('fields_single', 'SELECT -3', 'A negative number.')")
    sent = report(db)

    cleaned = Allowlist.load().clean(sent)

    assert cleaned.dropped_keys == 0
    assert cleaned.report == sent
    assert sent["vendor_metrics"] == {"fields_test": {"one": 1, "two": 2.5}, "fields_single": -3}
