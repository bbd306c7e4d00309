"""telemetry.metrics_level, set every PostgreSQL way, and DISABLE_TELEMETRY."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cluster import Cluster
from tests.helpers import Notices, report, roles, scalar
from tests.pgtree import PgTree


def level(conn: psycopg.Connection) -> tuple[str, str]:
    r = report(conn)
    return r["metrics_level"], r["metrics_level_source"]


def test_default_is_basic(db: psycopg.Connection[Any]) -> None:
    assert level(db) == ("basic", "default")
    assert scalar(db, "SHOW telemetry.metrics_level") == "basic"


def test_postgresql_conf_line(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    conf = Path(cluster.datadir) / "postgresql.conf"
    original = conf.read_text()
    try:
        conf.write_text(original + "\ntelemetry.metrics_level = off\n")
        cluster.reload()
        with cluster.connect(db.info.dbname) as conn:
            assert level(conn) == ("off", "configuration file")
    finally:
        conf.write_text(original)
        cluster.reload()
    with cluster.connect(db.info.dbname) as conn:
        assert level(conn) == ("basic", "default")


def test_alter_system_in_a_fresh_session(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    # The README's command, as the first statement of a new session.
    try:
        with cluster.connect() as fresh:
            fresh.execute("ALTER SYSTEM SET telemetry.metrics_level = off")
            fresh.execute("SELECT pg_reload_conf()")
        cluster.reload()
        with cluster.connect(db.info.dbname) as conn:
            assert level(conn) == ("off", "alter system")
        with cluster.connect() as fresh:
            fresh.execute("ALTER SYSTEM SET telemetry.metrics_level = basic")
        cluster.reload()
        with cluster.connect(db.info.dbname) as conn:
            assert level(conn) == ("basic", "alter system")
    finally:
        with cluster.connect() as admin:
            admin.execute("ALTER SYSTEM RESET telemetry.metrics_level")
        cluster.reload()


def test_alter_database(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    db.execute(f'ALTER DATABASE "{db.info.dbname}" SET telemetry.metrics_level = off')
    with cluster.connect(db.info.dbname) as conn:
        assert level(conn) == ("off", "database")


def test_alter_user(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    with roles(db, "level_watcher LOGIN IN ROLE pg_monitor"):
        db.execute("ALTER USER level_watcher SET telemetry.metrics_level = off")
        with cluster.connect(db.info.dbname, user="level_watcher") as conn:
            assert level(conn) == ("off", "user")
        with cluster.connect(db.info.dbname) as conn:  # other roles keep the default
            assert level(conn) == ("basic", "default")


def test_invalid_value_warns_and_counts_as_off(db: psycopg.Connection[Any]) -> None:
    notices = Notices(db)
    db.execute("SET telemetry.metrics_level = 'bogus'")
    assert level(db) == ("off", "session")
    [warning] = notices.of("WARNING")
    assert "invalid value for telemetry.metrics_level" in warning
    assert "off, basic" in warning


def test_only_superusers_can_change_the_level(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    with (
        roles(db, "plain_setter LOGIN"),
        cluster.connect(db.info.dbname, user="plain_setter") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SET telemetry.metrics_level = basic")


def test_level_spellings_are_read_trimmed_and_in_any_case(db: psycopg.Connection[Any]) -> None:
    notices = Notices(db)
    for value, expected in ((" BASIC ", "basic"), ("Off", "off"), ("\toff\n", "off"), ("basic", "basic")):
        db.execute("SELECT set_config('telemetry.metrics_level', %s, false)", [value])
        assert level(db) == (expected, "session"), value
    assert notices.of("WARNING") == []
    for value in ("basic2", "on", "", "b asic"):
        db.execute("SELECT set_config('telemetry.metrics_level', %s, false)", [value])
        assert level(db) == ("off", "session"), value
    assert len(notices.of("WARNING")) == 4


# Fail closed: anything but an explicit false value disables, a typo included.
@pytest.mark.parametrize("value", ["1", "true", "YES", "ture", " 2 ", "disable"])
def test_disable_telemetry_environment_forces_off(pg_tree: PgTree, value: str) -> None:
    with Cluster(pg_tree, name="envoff", env={"DISABLE_TELEMETRY": value}) as c, c.database("envoff") as conn:
        conn.execute("ALTER DATABASE envoff SET telemetry.metrics_level = basic")
        with c.connect("envoff") as fresh:
            assert level(fresh) == ("off", "environment")
            assert scalar(fresh, "SELECT telemetry_tick()") == {
                "outcome": "disabled",
                "metrics_level": "off",
                "metrics_level_source": "environment",
            }


@pytest.mark.parametrize("value", ["", "0", " False ", "no", "OFF"])
def test_explicit_false_values_leave_the_settings_in_charge(pg_tree: PgTree, value: str) -> None:
    with Cluster(pg_tree, name="envon", env={"DISABLE_TELEMETRY": value}) as c, c.database("envon") as conn:
        assert level(conn) == ("basic", "default")


def test_without_preload_the_conf_line_makes_alter_system_work(pg_tree: PgTree) -> None:
    """The no-restart route of the README: one line in postgresql.conf, then reload."""
    with Cluster(pg_tree, name="nopreload", conf={"shared_preload_libraries": "''"}) as c:
        # Without the line, 15 and 16 refuse the name and 17+ accept it: tests/extension/test_majors.py.
        conf = Path(c.datadir) / "postgresql.conf"
        conf.write_text(conf.read_text() + "\ntelemetry.metrics_level = basic\n")
        c.reload()
        with c.connect() as fresh:
            fresh.execute("ALTER SYSTEM SET telemetry.metrics_level = off")
            fresh.execute("SELECT pg_reload_conf()")
        c.reload()
        with c.database("nopreload") as conn:
            assert level(conn) == ("off", "alter system")
