"""Small helpers the tests share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

CONTROL_FILE = Path(__file__).resolve().parent.parent / "telemetry.control"


def control_version() -> str:
    """The extension version being built: telemetry.control's default_version, its one owner."""
    match = re.search(r"^default_version\s*=\s*'([^']+)'", CONTROL_FILE.read_text(), re.M)
    assert match, f"{CONTROL_FILE} has no default_version"
    return match.group(1)


VERSION = control_version()
# A release newer than the one being built, for answers that should make it warn.
_major, _minor = VERSION.split(".")[:2]
NEWER_RELEASE = f"{_major}.{int(_minor) + 1}.0"


def report(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute("SELECT get_report()").fetchone()
    assert row is not None
    value: dict[str, Any] = row[0]
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
