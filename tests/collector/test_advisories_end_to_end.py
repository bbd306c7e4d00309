"""The database learns from the real collector what it runs that is out of date, and says so in its log."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from tests import fake_extensions
from tests.cluster import Cluster
from tests.collector.helpers import Collector, run_cli
from tests.extension.job.helpers import configure, sent_and_told, tick
from tests.helpers import EXTENSION_VERSION, release_after, report
from tests.pgtree import PgTree

NEWER = release_after()
NOTES = "https://example.org/notes/{}"


@pytest.fixture(scope="module", autouse=True)
def _stand_in_timescaledb(pg_tree: PgTree) -> None:
    fake_extensions.install(pg_tree)


def add(dsn: str, version: str, *options: str) -> None:
    run_cli("release", "add", version, *options, "--dsn", dsn)


def server_minor(db: psycopg.Connection[Any]) -> tuple[int, int]:
    row = db.execute("SELECT current_setting('server_version_num')").fetchone()
    assert row is not None
    num = int(row[0])
    return num // 10000, num % 10000


def warnings_with_hints(cluster: Cluster, offset: int) -> list[tuple[str, str]]:
    """(WARNING text, its HINT) of each telemetry WARNING the server logged since `offset`."""
    time.sleep(0.2)  # the server's log is written asynchronously to our reading it
    lines = cluster.log_since(offset).splitlines()
    found = []
    for i, line in enumerate(lines):
        if "WARNING:  telemetry:" in line:
            hint = lines[i + 1] if i + 1 < len(lines) and "HINT:" in lines[i + 1] else ""
            found.append((line.split("WARNING:  ", 1)[1], hint.split("HINT:  ", 1)[-1]))
    return found


def versions(db: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    return {row.pop("product"): row for row in cur.execute("SELECT * FROM telemetry_versions").fetchall()}


def test_security_routine_and_a_listed_extension(
    db: psycopg.Connection[Any], cluster: Cluster, collector: Collector, collector_dsn: str
) -> None:
    major, minor = server_minor(db)
    installed_pg, fixed_pg = f"{major}.{minor}", f"{major}.{minor + 1}"
    add(collector_dsn, EXTENSION_VERSION)
    add(collector_dsn, NEWER, "--notes-url", NOTES.format(NEWER))
    add(collector_dsn, installed_pg, "--product", "postgresql")
    add(collector_dsn, fixed_pg, "--product", "postgresql", "--security", "--notes-url", NOTES.format(fixed_pg))
    add(collector_dsn, "2.17.2", "--product", "timescaledb")
    add(collector_dsn, "2.18.0", "--product", "timescaledb")
    add(collector_dsn, "3.5.0", "--product", "postgis")  # not installed here: not told
    db.execute("CREATE EXTENSION timescaledb")
    configure(db, f"{collector.url}/v1/report")
    assert report(db)["extensions"]["versions"]["timescaledb"] == "2.17.2"
    offset = cluster.log_offset()

    outcome = tick(db)

    assert sent_and_told(outcome) == ("sent", NEWER, False)
    told = warnings_with_hints(cluster, offset)
    assert len(told) == 3, told
    # The security fix first, with both versions, the step and the link; then the routine ones, not urgent.
    security, hint = told[0]
    assert security == (
        f"telemetry: security fix available: PostgreSQL {installed_pg} is installed and a newer release fixes "
        f"security issues; the newest release is {fixed_pg}. Release notes: {NOTES.format(fixed_pg)}"
    )
    assert hint.startswith(f"Install the PostgreSQL {fixed_pg} server packages and restart the server")
    routine = dict(told[1:])
    own = f"telemetry: newer release available (routine, not urgent): the telemetry extension {EXTENSION_VERSION}"
    [(message, hint)] = [(m, h) for m, h in routine.items() if m.startswith(own)]
    assert message.endswith(f"the newest release is {NEWER}. Release notes: {NOTES.format(NEWER)}")
    assert hint == f"Install telemetry {NEWER}, then run ALTER EXTENSION telemetry UPDATE in each database."
    [(message, hint)] = [(m, h) for m, h in routine.items() if "timescaledb" in m]
    assert "the extension timescaledb 2.17.2 is installed; the newest release is 2.18.0" in message
    assert "urgent" in message and "security" not in message
    assert hint.startswith("Install timescaledb 2.18.0, then run ALTER EXTENSION timescaledb UPDATE")

    rows = versions(db)
    assert list(rows) == ["telemetry", "postgresql", "timescaledb"]
    assert {k: rows["postgresql"][k] for k in ("installed", "newest", "newest_in_series", "security")} == {
        "installed": installed_pg,
        "newest": fixed_pg,
        "newest_in_series": fixed_pg,
        "security": True,
    }
    assert rows["postgresql"]["notes_url"] == NOTES.format(fixed_pg) and rows["postgresql"]["checked_at"]
    assert rows["telemetry"]["end_of_life"] is False and rows["telemetry"]["up_to_date"] is False
    assert rows["timescaledb"]["newest"] == "2.18.0" and rows["timescaledb"]["security"] is False
    status = db.execute("SELECT versions_behind, security_fixes_for, end_of_life_for FROM telemetry_status").fetchone()
    assert status == (3, ["postgresql"], None)


def test_end_of_life_and_up_to_date(
    db: psycopg.Connection[Any], cluster: Cluster, collector: Collector, collector_dsn: str
) -> None:
    major, minor = server_minor(db)
    add(collector_dsn, EXTENSION_VERSION, "--notes-url", NOTES.format(EXTENSION_VERSION))
    add(collector_dsn, f"{major}.{minor}", "--product", "postgresql")
    series = ".".join(EXTENSION_VERSION.split(".")[:2])
    configure(db, f"{collector.url}/v1/report")

    offset = cluster.log_offset()
    assert tick(db, "telemetry_send_report")["up_to_date"] is True
    assert warnings_with_hints(cluster, offset) == []
    assert f"telemetry: version {EXTENSION_VERSION} is up to date" in cluster.log_since(offset)
    assert all(row["up_to_date"] for row in versions(db).values())
    assert db.execute("SELECT versions_behind FROM telemetry_status").fetchone() == (0,)

    run_cli("release", "eol", series, "--dsn", collector_dsn)
    offset = cluster.log_offset()
    tick(db, "telemetry_send_report")
    [(message, hint)] = warnings_with_hints(cluster, offset)
    assert message == (
        f"telemetry: end of life: the telemetry extension {EXTENSION_VERSION} is installed and its release series "
        f"{series}.x has reached end of life; the newest release is {EXTENSION_VERSION}. "
        f"Release notes: {NOTES.format(EXTENSION_VERSION)}"
    )
    assert hint.startswith("Install telemetry")
    assert versions(db)["telemetry"]["end_of_life"] is True
    status = db.execute("SELECT versions_behind, end_of_life_for FROM telemetry_status").fetchone()
    assert status == (1, ["telemetry"])


def test_a_postgresql_minor_behind_gets_the_patch_step(
    db: psycopg.Connection[Any], cluster: Cluster, collector: Collector, collector_dsn: str
) -> None:
    """Two minors behind, the newest of its major is the step; a newer major is only the newest release."""
    major, minor = server_minor(db)
    add(collector_dsn, EXTENSION_VERSION)
    for step in (minor, minor + 1, minor + 2):
        add(collector_dsn, f"{major}.{step}", "--product", "postgresql")
    add(collector_dsn, f"{major + 3}.1", "--product", "postgresql")
    configure(db, f"{collector.url}/v1/report")
    offset = cluster.log_offset()
    tick(db)
    [(message, hint)] = warnings_with_hints(cluster, offset)
    assert message == (
        f"telemetry: newer release available (routine, not urgent): PostgreSQL {major}.{minor} is installed; "
        f"the smallest step is {major}.{minor + 2} (the newest of {major}.x), the newest release is {major + 3}.1."
    )
    assert "a minor release needs no dump and no pg_upgrade" in hint
