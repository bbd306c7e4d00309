"""Who may send, redirect or change options: superusers only; invalid options change nothing."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.cluster import Cluster
from tests.helpers import assert_denied, roles, scalar


def test_unprivileged_role_cannot_send_or_redirect(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    with roles(db, "job_plain LOGIN", "job_monitor LOGIN IN ROLE pg_monitor"):
        for user in ("job_plain", "job_monitor"):
            with cluster.connect(db.info.dbname, user=user) as conn:
                assert_denied(
                    conn,
                    "SELECT telemetry_tick()",
                    "SELECT telemetry_send_report()",
                    "SELECT telemetry_set_option('endpoint', 'http://127.0.0.1:9/')",
                    "SELECT _telemetry.tick()",
                    "UPDATE _telemetry.options SET value = 'x'",
                )
        with cluster.connect(db.info.dbname, user="job_monitor") as conn:
            assert scalar(conn, "SELECT metrics_level FROM telemetry_status") == "basic"
            assert scalar(conn, "SELECT count(*) FROM _telemetry.attempts") == 0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("endpoint", "ftp://127.0.0.1/x", "http:// or https:// URL"),
        ("endpoint", "http://user:secret@127.0.0.1/x", "must not carry credentials"),
        ("endpoint", "not a url", "http:// or https:// URL"),
        ("interval", "0 seconds", "interval must be between"),
        ("deadline", "5 minutes", "deadline must be between"),
        ("ca_file", "relative.pem", "absolute path"),
        ("colour", "blue", "unknown option"),
    ],
)
def test_invalid_options_are_refused_and_change_nothing(
    db: psycopg.Connection[Any], name: str, value: str, message: str
) -> None:
    with pytest.raises(psycopg.Error, match=message):
        db.execute("SELECT telemetry_set_option(%s, %s)", [name, value])
    assert scalar(db, "SELECT count(*) FROM _telemetry.options") == 0
