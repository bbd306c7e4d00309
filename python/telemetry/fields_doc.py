"""Writes the field dictionary, docs/report-fields.md, from the metric declarations.

    python -m telemetry.fields_doc > docs/report-fields.md

tests/test_fields.py fails when the file and the declarations disagree.
"""

from __future__ import annotations

import json

from telemetry.metrics import METRICS, REPORT_FORMAT_VERSION


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    lines = [
        "# Report fields",
        "",
        "Every key of the report that `SELECT get_report()` shows and the job sends",
        f"(report format version {REPORT_FORMAT_VERSION}). Generated from",
        "`python/telemetry/metrics.py` by `python -m telemetry.fields_doc`; do not edit by hand.",
        "",
        "Values are numbers, booleans, or strings from a fixed vocabulary. No name, path, host",
        "or setting value that a user chose is ever part of the report.",
        "",
        "| key | type | level | meaning | comes from | example |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for metric in METRICS:
        example = json.dumps(metric.example, sort_keys=True)
        lines.append(
            f"| `{metric.key}` | {metric.json_type} | {metric.level} | {_cell(metric.summary)} "
            f"| {_cell(metric.source)} | `{_cell(example)}` |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
