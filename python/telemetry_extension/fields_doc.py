"""Writes the field dictionary, docs/report-fields.md, from the metric declarations.

    cd python && python -m telemetry_extension.fields_doc > ../docs/report-fields.md

tests/test_fields.py fails when the file and the declarations disagree.
documented_paths() is every documented path with its JSON type, for tools
that need the list (a collector's allowlist, for one).
"""

from __future__ import annotations

import json

import telemetry_protocol as protocol
from telemetry_extension.metrics import METRICS
from telemetry_extension.metrics.extensions import PUBLIC_EXTENSIONS
from telemetry_extension.metrics.relations import KNOWN_ACCESS_METHODS
from telemetry_extension.metrics.runner import ERROR_CODES_DOC


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def documented_paths() -> list[tuple[str, str]]:
    """Every documented key as (dotted path, JSON type); `*` stands for one key of listed vocabulary."""
    paths: list[tuple[str, str]] = []
    for metric in METRICS:
        paths.append((metric.key, metric.json_type))
        paths.extend((f"{metric.key}.{field.path}", field.json_type) for field in metric.fields)
    return paths


def render() -> str:
    lines = [
        "# Report fields",
        "",
        "Every key of the report that `SELECT get_report()` shows and the job sends",
        f"(report format version {protocol.REPORT_FORMAT_VERSION}). Generated from the declarations in",
        "`python/telemetry_extension/metrics/` by `python -m telemetry_extension.fields_doc`; do not edit by hand.",
        "",
        "Values are numbers, booleans, or strings from a fixed vocabulary. No name, path, host",
        "or setting value that a user chose is ever part of the report. Counts and sizes of the",
        "deeper metrics are rounded to two significant digits (see [metrics.md](metrics.md)).",
        "",
        "Indented keys are inside an object; `*` stands for one key from the vocabulary the row names.",
        f"Any metric may instead hold an error marker: {ERROR_CODES_DOC}. A metric a superuser",
        "switched off with `telemetry_set_metric_enabled` is absent.",
        "",
        "The wire protocol requires these keys; a collector refuses a report without them, so they cannot be",
        "switched off: " + ", ".join(f"`{key}`" for key in protocol.REQUIRED_REPORT_FIELDS) + ".",
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
        for field in metric.fields:
            lines.append(
                f"| `{metric.key}.{field.path}` | {field.json_type} | {metric.level} | {_cell(field.summary)} | | |"
            )
    lines += [
        "",
        "## Vocabulary",
        "",
        "Extensions whose name and version `extensions.versions` may carry (any other is only counted):",
        "",
        ", ".join(f"`{name}`" for name in sorted(set(PUBLIC_EXTENSIONS))) + ".",
        "",
        "Access methods `access_methods` names (any other is counted as `other`):",
        "",
        ", ".join(f"`{name}`" for name in KNOWN_ACCESS_METHODS) + ".",
        "",
        "Registered metrics (`vendor_metrics.*`) are listed, with their summaries, by",
        "`SELECT * FROM telemetry_metrics` in the database that carries them.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
