"""Facts written in two languages agree with their owner: defaults, limits, what the NOTICE says."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

import telemetry_protocol as protocol
from telemetry_collector.fleet import rollup
from telemetry_collector.ingest import DEFAULT_MAX_BODY_BYTES
from telemetry_extension import build_info
from telemetry_extension.level_setting import DEFAULT_LEVEL, KNOWN_SOURCES, LEVELS
from telemetry_extension.metrics import registered
from tests.helpers import REPO, Notices, scalar


def test_default_level_is_the_same_in_c_sql_and_python(db: psycopg.Connection[Any]) -> None:
    boot = scalar(db, "SELECT boot_val FROM pg_settings WHERE name = 'telemetry.metrics_level'")
    assert boot == DEFAULT_LEVEL
    arguments = scalar(db, "SELECT pg_get_function_arguments('telemetry_register_metric'::regproc)")
    assert f"level text DEFAULT '{DEFAULT_LEVEL}'::text" in arguments
    column = scalar(
        db,
        "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef"
        " WHERE adrelid = '_telemetry.vendor_metrics'::regclass"
        " AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = adrelid AND attname = 'level')",
    )
    assert column == f"'{DEFAULT_LEVEL}'::text"


def test_registration_default_timeout_is_python_s(db: psycopg.Connection[Any]) -> None:
    arguments = scalar(db, "SELECT pg_get_function_arguments('telemetry_register_metric'::regproc)")
    assert f"timeout_ms integer DEFAULT {registered.DEFAULT_TIMEOUT_MS}" in arguments


def _row_accepted(db: psycopg.Connection[Any], key: str, summary: str, timeout_ms: int) -> bool:
    """Whether the table's CHECKs accept the row (inserted and rolled back)."""
    try:
        with db.transaction(force_rollback=True):
            db.execute(
                "INSERT INTO _telemetry.vendor_metrics (key, summary, query, timeout_ms)"
                " VALUES (%s, %s, 'SELECT 1', %s)",
                [key, summary, timeout_ms],
            )
    except psycopg.errors.CheckViolation:
        return False
    return True


def _python_accepts(key: str, summary: str, timeout_ms: int) -> bool:
    try:
        registered.validate(key, "SELECT 1", summary, timeout_ms, DEFAULT_LEVEL)
    except registered.InvalidRegistration:
        return False
    return True


@pytest.mark.parametrize(
    ("key", "summary", "timeout_ms"),
    [
        ("k" * 63, "s", 1),
        ("k" * 64, "s", 1),
        ("a_1", "s", 1),
        ("1a", "s", 1),
        ("Ab", "s", 1),
        ("k", "s" * registered.MAX_SUMMARY, 1),
        ("k", "s" * (registered.MAX_SUMMARY + 1), 1),
        ("k", "", 1),
        ("k", "s", 0),
        ("k", "s", registered.MAX_TIMEOUT_MS),
        ("k", "s", registered.MAX_TIMEOUT_MS + 1),
    ],
)
def test_vendor_metric_limits_in_sql_checks_and_python_agree(
    db: psycopg.Connection[Any], key: str, summary: str, timeout_ms: int
) -> None:
    assert _row_accepted(db, key, summary, timeout_ms) == _python_accepts(key, summary, timeout_ms)


def test_report_size_limit_is_the_protocol_s() -> None:
    assert DEFAULT_MAX_BODY_BYTES == protocol.MAX_REPORT_BYTES
    protocol.check_report_size(b"x" * protocol.MAX_REPORT_BYTES)
    with pytest.raises(protocol.ProtocolError, match="larger than"):
        protocol.check_report_size(b"x" * (protocol.MAX_REPORT_BYTES + 1))


def test_notice_tells_the_options_in_force(db: psycopg.Connection[Any]) -> None:
    for name, value in (("interval", "3 days"), ("grace", "2 hours"), ("endpoint", "https://collector.example/r")):
        db.execute("SELECT telemetry_set_option(%s, %s)", [name, value])
    notices = Notices(db)
    db.execute("SELECT _telemetry.announce()")
    [text] = notices.of("NOTICE")
    assert "Every 3 days this database sends" in text
    assert "(2 hours from now)" in text and "It goes to https://collector.example/r." in text
    assert "24 hours" not in text


def test_level_spelling_in_sql_knows_exactly_the_python_levels(db: psycopg.Connection[Any]) -> None:
    for value in (*LEVELS, *(f" {v.upper()}\t" for v in LEVELS)):
        assert scalar(db, "SELECT _telemetry.metrics_level_spelled(%s)", [value]) == value.strip().lower()
    for value in ("on", "full", "", "b asic"):
        assert scalar(db, "SELECT _telemetry.metrics_level_spelled(%s)", [value]) is None


def test_level_sources_in_sql_are_python_s(db: psycopg.Connection[Any]) -> None:
    source = scalar(db, "SELECT prosrc FROM pg_proc WHERE oid = '_telemetry.effective_level'::regproc")
    found = re.search(r"ANY \(ARRAY\[(.*?)\]\)", source, re.DOTALL)
    assert found is not None
    assert tuple(re.findall(r"'([^']*)'", found.group(1))) == KNOWN_SOURCES


def test_the_collector_package_has_the_extension_s_version_and_build_backend_pin() -> None:
    # pyproject.toml cannot read telemetry.control, and pip-compile cannot read [build-system]:
    # both are written twice, so they are checked here.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    control = re.search(r"^default_version = '(.+)'$", (REPO / "telemetry.control").read_text(), re.M)
    assert control is not None
    assert project["project"]["version"] == control.group(1)
    install_pins = (REPO / "python" / "requirements-collector-install.in").read_text().split()
    for backend in project["build-system"]["requires"]:
        assert backend in install_pins, f"{backend} is not pinned in requirements-collector-install.in"


def test_install_methods_are_the_protocol_s() -> None:
    """What the extension reports, the collector's dictionary accepts and the roll-up counts."""
    dictionary = json.loads((REPO / "python" / "telemetry_collector" / "report_fields.json").read_text())
    assert tuple(dictionary["fields"]["install_method"]["values"]) == protocol.INSTALL_METHODS
    assert build_info.INSTALL_METHODS == protocol.INSTALL_METHODS
    assert rollup.INSTALL_METHODS == protocol.INSTALL_METHODS


def test_makefile_default_endpoint_is_the_placeholder() -> None:
    """A build left with the Makefile's endpoint and a source checkout name the same placeholder, no endpoint."""
    [endpoint] = re.findall(r"^TELEMETRY_ENDPOINT \?= *(\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert endpoint == build_info.PLACEHOLDER_ENDPOINT
    assert (urlsplit(endpoint).hostname or "").endswith(".invalid")


@pytest.mark.parametrize(
    "text",
    [
        "0.2.0",
        "0.2",
        "1!2.0",
        "0!2.0",
        "v0.2.0",
        " 0.2.0",
        "0.3.0rc1",
        "0.3.0-rc1",
        "0.3.0RC1",
        "0.3.0c1",
        "0.3.0.post1",
        "0.3.0post1",
        "0.3.0-1",
        "0.3.0.dev2",
        "0.3.0a1.post2.dev3",
        "01.2",
        "1.0+local",
        "not a version",
        "",
    ],
)
def test_rollup_normal_form_in_sql_is_the_protocol_s(text: str) -> None:
    """The roll-up finds versions to normalize with a regular expression; the protocol normalizes them."""
    assert (re.search(rollup._NORMAL_VERSION, text) is not None) == (protocol.normal_version(text) == text)
