"""Small helpers the tests share."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from packaging.version import Version
from psycopg.abc import Params, QueryNoTemplate

REPO = Path(__file__).resolve().parent.parent


def control_version() -> str:
    """The extension version being built: telemetry.control's default_version, its one owner."""
    found = re.search(r"^default_version\s*=\s*'([^']+)'", (REPO / "telemetry.control").read_text(), re.MULTILINE)
    assert found is not None, "telemetry.control has no default_version"
    return found.group(1)


EXTENSION_VERSION = control_version()


def release_after(version: str = EXTENSION_VERSION, *, step: str = "minor") -> str:
    """A release newer than `version`: the next minor (x.y+1.0) or patch (x.y.z+1)."""
    major, minor, patch = (*Version(version).release, 0, 0)[:3]
    return f"{major}.{minor + 1}.0" if step == "minor" else f"{major}.{minor}.{patch + 1}"


def one_row(conn: psycopg.Connection[Any], query: QueryNoTemplate, params: Params | None = None) -> Any:
    """The one row a query returns (it must return one)."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"no row from {query!r}"
    return row


def scalar(conn: psycopg.Connection[Any], query: QueryNoTemplate, params: Params | None = None) -> Any:
    """The first column of the one row a query returns."""
    return one_row(conn, query, params)[0]


def register_metric(conn: psycopg.Connection[Any], key: str, query: str, timeout_ms: int = 1000) -> Any:
    """telemetry_register_metric(), with a summary made from the key."""
    return scalar(
        conn, "SELECT telemetry_register_metric(%s, %s, %s, %s)", [key, query, f"Test metric {key}.", timeout_ms]
    )


def assert_registration_refused(conn: psycopg.Connection[Any], key: str, query: str, complaint: str) -> None:
    """telemetry_register_metric() refuses the metric, saying `complaint`, and nothing is registered."""
    with pytest.raises(psycopg.Error, match="cannot register metric") as refused:
        register_metric(conn, key, query)
    assert complaint in str(refused.value)
    assert scalar(conn, "SELECT count(*) FROM _telemetry.vendor_metrics") == 0


def execute_each(conn: psycopg.Connection[Any], *statements: str) -> None:
    """Each statement on its own, as psql would: VACUUM and the like refuse to share a transaction block."""
    for statement in statements:
        conn.execute(statement)


def assert_denied(conn: psycopg.Connection[Any], *statements: str) -> None:
    """Each statement fails for lack of privilege."""
    for statement in statements:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


@contextmanager
def roles(conn: psycopg.Connection[Any], *definitions: str) -> Iterator[None]:
    """Roles for the block, dropped after it; each definition is what follows CREATE ROLE."""
    for definition in definitions:
        conn.execute(f"CREATE ROLE {definition}")
    try:
        yield
    finally:
        for definition in definitions:
            conn.execute(f"DROP ROLE {definition.split()[0]}")


def report(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    value: dict[str, Any] = scalar(conn, "SELECT get_report()")
    return value


class Notices:
    """Collects the NOTICE/WARNING messages a connection receives."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.items: list[tuple[str, str]] = []
        conn.add_notice_handler(self._keep)

    def _keep(self, diag: psycopg.errors.Diagnostic) -> None:
        # A Diagnostic is valid only during the callback: copy what we need.
        text = "\n".join(filter(None, (diag.message_primary, diag.message_detail, diag.message_hint)))
        self.items.append((diag.severity_nonlocalized or "", text))

    def of(self, severity: str) -> list[str]:
        return [text for sev, text in self.items if sev == severity]
