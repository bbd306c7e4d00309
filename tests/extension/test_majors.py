"""The supported PostgreSQL majors, and what a DBA sees differ between them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from tests.cluster import Cluster
from tests.helpers import Notices, report
from tests.pgtree import REPO, PgTree


def supported_majors() -> list[int]:
    """PG_MAJORS of the Makefile: the one place the list lives."""
    match = re.search(r"^PG_MAJORS\s*=\s*(.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "PG_MAJORS is missing from the Makefile"
    return [int(m) for m in match.group(1).split()]


def test_readme_states_the_majors_make_test_runs() -> None:
    readme = (REPO / "README.md").read_text()
    stated = re.findall(r"^Supported PostgreSQL majors: (.+)\.$", readme, re.MULTILINE)
    assert len(stated) == 1, "the README states the supported majors once, in one sentence"
    assert [int(m) for m in re.findall(r"\d+", stated[0])] == supported_majors()


def test_the_server_under_test_is_a_supported_major(cluster: Cluster, pg_major: int) -> None:
    with cluster.connect() as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
    assert row is not None
    assert row[0] == pg_major
    assert pg_major in supported_majors()


@pytest.fixture(scope="module")
def unloaded(pg_tree: PgTree) -> Iterator[Cluster]:
    """A cluster that does not preload telemetry, the no-restart route of the README."""
    with Cluster(pg_tree, name="unloaded", conf={"shared_preload_libraries": "''"}) as c:
        yield c


def test_create_notice_hints_at_preloading_only_where_alter_system_needs_it(unloaded: Cluster, pg_major: int) -> None:
    with unloaded.database("notice_hint", extension=False) as conn:
        notices = Notices(conn)
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        [text] = [n for n in notices.of("NOTICE") if n.startswith("telemetry:")]
    assert "ALTER SYSTEM SET telemetry.metrics_level = off" in text
    if pg_major < 17:
        assert "On PostgreSQL 15 and 16" in text and "shared_preload_libraries" in text
    else:
        assert "shared_preload_libraries" not in text


def test_alter_system_without_preload(unloaded: Cluster, pg_major: int) -> None:
    """PostgreSQL 15 and 16 refuse a custom name no loaded module declares; 17 and later accept it."""
    if pg_major < 17:
        with unloaded.connect() as fresh, pytest.raises(psycopg.errors.UndefinedObject, match="metrics_level"):
            fresh.execute("ALTER SYSTEM SET telemetry.metrics_level = off")
        return
    try:
        with unloaded.connect() as fresh:
            fresh.execute("ALTER SYSTEM SET telemetry.metrics_level = off")
        unloaded.reload()
        with unloaded.database("alter_system_unloaded") as conn:
            r = report(conn)
        assert (r["metrics_level"], r["metrics_level_source"]) == ("off", "alter system")
    finally:
        with unloaded.connect() as admin:
            admin.execute("ALTER SYSTEM RESET telemetry.metrics_level")
        unloaded.reload()


def test_data_checksums_are_reported_as_the_cluster_has_them(pg_tree: PgTree, db: psycopg.Connection) -> None:
    """initdb turns them on by default from 18; the test clusters have them off unless asked, on every major."""
    assert report(db)["server_features"]["data_checksums"] is False
    with Cluster(pg_tree, name="checksums", data_checksums=True) as c, c.database("checksums") as conn:
        assert conn.execute("SHOW data_checksums").fetchone() == ("on",)
        assert report(conn)["server_features"]["data_checksums"] is True
