"""The README's two routes to a working ALTER SYSTEM without a restart (telemetry not in shared_preload_libraries).

Without either, PostgreSQL 15 and 16 refuse the name (tests/extension/test_majors.py,
test_alter_system_without_preload); 17 and later accept any name, so there these pass trivially.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.helpers import report
from tests.pgtree import PgTree


@pytest.fixture
def unloaded(pg_tree: PgTree) -> Iterator[Cluster]:
    with Cluster(pg_tree, name="no-restart", conf={"shared_preload_libraries": "''"}) as c:
        yield c


def assert_alter_system_turns_it_off(c: Cluster, dbname: str) -> None:
    with c.connect() as fresh:  # the README's command, first statement of a new session
        fresh.execute("ALTER SYSTEM SET telemetry.metrics_level = off")
    c.reload()
    with c.database(dbname) as conn:
        shown = report(conn)
        assert (shown["metrics_level"], shown["metrics_level_source"]) == ("off", "alter system")
        assert conn.execute("SHOW telemetry.metrics_level").fetchone() == ("off",)


def test_session_preload_libraries_route(unloaded: Cluster) -> None:
    with unloaded.connect() as admin:
        admin.execute("ALTER SYSTEM SET session_preload_libraries = 'telemetry'")
    unloaded.reload()
    with unloaded.connect() as fresh:
        assert fresh.execute("SELECT count(*) FROM pg_settings WHERE name = 'telemetry.metrics_level'").fetchone() == (
            1,
        )
    assert_alter_system_turns_it_off(unloaded, "session_preloaded")


def test_postgresql_conf_line_route(unloaded: Cluster) -> None:
    conf = Path(unloaded.datadir) / "postgresql.conf"
    conf.write_text(conf.read_text() + "\ntelemetry.metrics_level = basic\n")
    unloaded.reload()
    assert_alter_system_turns_it_off(unloaded, "conf_line")
