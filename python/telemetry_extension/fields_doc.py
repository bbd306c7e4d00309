"""Writes the field dictionary, docs/report-fields.md, from the metric declarations,
and the collector's allowlist made from the same dictionary.

    cd python && python -m telemetry_extension.fields_doc > ../docs/report-fields.md
    cd python && python -m telemetry_extension.fields_doc --collector > telemetry_collector/report_fields.json

tests/extension/test_fields.py and tests/collector/test_report_fields.py fail when a file
and the declarations disagree.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import telemetry_protocol as protocol
from telemetry_extension import build_info
from telemetry_extension.level_setting import KNOWN_SOURCES, LEVELS
from telemetry_extension.metrics import METRICS
from telemetry_extension.metrics.extensions import PUBLIC_EXTENSIONS, RELATED_EXTENSIONS
from telemetry_extension.metrics.registered import KEY as VENDOR_KEY
from telemetry_extension.metrics.registered import MAX_COLUMNS as VENDOR_MAX_COLUMNS
from telemetry_extension.metrics.registered import MAX_METRICS as VENDOR_MAX_METRICS
from telemetry_extension.metrics.relations import KNOWN_ACCESS_METHODS
from telemetry_extension.metrics.runner import ERROR_CODES_DOC, INTERNAL, INVALID_RESULT, OTHER, TIMEOUT
from telemetry_extension.metrics.values import UNAME_CHARS, UNAME_MAX_CHARS

# What each string of the dictionary may hold, for the collector's checks.
# A string path without an entry here makes collector_allowlist() fail.
_UNAME = {"format": "pattern", "pattern": f"[{UNAME_CHARS}]*", "max_length": UNAME_MAX_CHARS}
_VERSION = {"format": "version", "max_length": protocol.MAX_VERSION_LENGTH}
STRING_FORMATS: dict[str, dict[str, Any]] = {
    "db_uuid": {"format": "uuid"},
    "exported_db_uuid": {"format": "uuid"},
    "installed_time": {"format": "timestamp"},
    "install_method": {"format": "vocabulary", "values": list(build_info.INSTALL_METHODS)},
    "os_name": _UNAME,
    "os_version": _UNAME,
    "os_release": _UNAME,
    "build_os_name": _UNAME,
    "build_os_version": _UNAME,
    # major.minor from server_version_num
    "postgresql_version": {"format": "pattern", "pattern": "[0-9]{1,4}\\.[0-9]{1,4}", "max_length": 9},
    "extension_version": _VERSION,
    "timescaledb_version": _VERSION,
    "extensions.versions.*": _VERSION,
    "metrics_level": {"format": "vocabulary", "values": list(LEVELS)},
    "metrics_level_source": {
        "format": "vocabulary",
        "values": [*KNOWN_SOURCES, "alter system", "environment", "other"],
    },
}
# The keys `*` stands for in each path that has one.
WILDCARD_KEYS: dict[str, dict[str, Any]] = {
    "related_extensions.*": {"keys": list(RELATED_EXTENSIONS)},
    "access_methods.*": {"keys": [*KNOWN_ACCESS_METHODS, "other"]},
    "extensions.versions.*": {"keys": sorted(set(PUBLIC_EXTENSIONS))},
    "vendor_metrics.*": {
        "key_pattern": VENDOR_KEY.pattern,
        "max_keys": VENDOR_MAX_METRICS,
        "max_object_keys": VENDOR_MAX_COLUMNS,
    },
}


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


def collector_allowlist() -> dict[str, Any]:
    """The dictionary as data for the collector: every path, its JSON type, what its strings and keys may be."""
    fields: dict[str, dict[str, Any]] = {}
    # The meaning travels with the path: the collector's landing page lists every key with it.
    meanings = {metric.key: metric.summary for metric in METRICS} | {
        f"{metric.key}.{field.path}": field.summary for metric in METRICS for field in metric.fields
    }
    for path, json_type in documented_paths():
        spec: dict[str, Any] = {"type": json_type, "meaning": meanings[path]}
        if json_type.startswith("string"):
            if path not in STRING_FORMATS:
                raise KeyError(f"{path} is a string without an entry in STRING_FORMATS")
            spec.update(STRING_FORMATS[path])
        if "*" in path:
            wildcard = path[: path.index("*") + 1]
            if wildcard not in WILDCARD_KEYS:
                raise KeyError(f"{wildcard} has no entry in WILDCARD_KEYS")
            spec["wildcard"] = {"path": wildcard, **WILDCARD_KEYS[wildcard]}
        fields[path] = spec
    return {
        "about": "Generated by `python -m telemetry_extension.fields_doc --collector` from the metric declarations; "
        "do not edit by hand. The collector stores only these paths.",
        "report_format_versions": [protocol.REPORT_FORMAT_VERSION],
        "required": list(protocol.REQUIRED_REPORT_FIELDS),
        "error_marker": {"codes": [TIMEOUT, INVALID_RESULT, INTERNAL, OTHER], "sqlstate_pattern": "[0-9A-Z]{5}"},
        "fields": fields,
    }


def render_collector_allowlist() -> str:
    return json.dumps(collector_allowlist(), indent=1) + "\n"


if __name__ == "__main__":
    print(render_collector_allowlist() if sys.argv[1:] == ["--collector"] else render(), end="")
