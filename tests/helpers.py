"""Small helpers the tests share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
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
