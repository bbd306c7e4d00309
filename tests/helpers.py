"""Small helpers the tests share."""

from __future__ import annotations

from typing import Any

import psycopg


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
