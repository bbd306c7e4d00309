"""Each metric on its own: failures, deadlines, vendor registration, switching metrics off."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from telemetry_extension.metrics import METRICS
from tests.cluster import Cluster
from tests.helpers import assert_denied, register_metric, report, roles, scalar

SLEEP = "SELECT 1 AS slept FROM pg_catalog.pg_sleep(60)"
# Tells "a deadline ended the metric" from "the 60 s sleep ran out" on a loaded machine; how long a
# report takes is measured in bench/, not asserted here.
CUT_SHORT = 30


def test_a_metric_that_raises_is_an_error_marker_and_the_rest_is_intact(db: psycopg.Connection[Any]) -> None:
    healthy = report(db)
    # Break the relation statistics for this database only.
    db.execute("ALTER EXTENSION telemetry DROP FUNCTION _telemetry.relation_stats(oid[], oid[])")
    db.execute("DROP FUNCTION _telemetry.relation_stats(oid[], oid[])")
    r = report(db)
    assert r["relations"] == {"error": "42883"}  # undefined_function: a code, never the message
    assert r["access_methods"] == {"error": "42883"}
    for key in set(healthy) - {"relations", "access_methods", "uptime_days"}:
        assert r[key] == healthy[key], key


def test_a_vendor_metric_that_raises_is_an_error_marker(db: psycopg.Connection[Any]) -> None:
    db.execute("CREATE TABLE widgets (id int)")
    register_metric(db, "widgets", "SELECT count(*) FROM public.widgets")
    register_metric(db, "other", "SELECT 7")
    db.execute("DROP TABLE widgets")
    r = report(db)
    assert r["vendor_metrics"] == {"widgets": {"error": "42P01"}, "other": 7}
    assert r["relations"]["tables"]["num_relations"] == 0 and isinstance(r["data_volume"], int)


def test_an_sqlstate_a_user_made_up_is_not_reported(db: psycopg.Connection[Any]) -> None:
    db.execute("""CREATE FUNCTION picky() RETURNS int LANGUAGE plpgsql AS $$
                  BEGIN
                      IF EXISTS (SELECT FROM pg_class WHERE relname = 'trigger_it') THEN
                          RAISE EXCEPTION 'no' USING ERRCODE = 'ZQ123';
                      END IF;
                      RETURN 1;
                  END $$""")
    register_metric(db, "picky", "SELECT public.picky()")
    register_metric(db, "raiser", "SELECT 1")
    db.execute("UPDATE _telemetry.vendor_metrics SET query = 'SELECT pg_catalog.sqrt(-1)' WHERE key = 'raiser'")
    db.execute("CREATE TABLE trigger_it ()")
    assert report(db)["vendor_metrics"] == {"picky": {"error": "other"}, "raiser": {"error": "2201F"}}


def test_a_metric_over_its_deadline_is_a_timeout_marker(db: psycopg.Connection[Any]) -> None:
    register_metric(db, "slow", "SELECT 1", timeout_ms=300)
    db.execute("UPDATE _telemetry.vendor_metrics SET query = %s WHERE key = 'slow'", [SLEEP])
    register_metric(db, "fast", "SELECT 2")
    started = time.monotonic()
    r = report(db)
    elapsed = time.monotonic() - started
    assert r["vendor_metrics"] == {"slow": {"error": "timeout"}, "fast": 2}
    assert elapsed < CUT_SHORT
    assert isinstance(r["relations"], dict) and "error" not in r["relations"]


def test_the_callers_statement_timeout_is_kept(db: psycopg.Connection[Any]) -> None:
    register_metric(db, "quick", "SELECT 1")
    db.execute("SET statement_timeout = '1500ms'")
    assert report(db)["vendor_metrics"] == {"quick": 1}
    # The caller's own deadline is armed again after each metric: it still ends a long statement.
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.execute("SELECT pg_sleep(3)")
    # A caller's deadline that comes before the metric's ends the whole report, as it should.
    db.execute("UPDATE _telemetry.vendor_metrics SET query = %s, timeout_ms = 10000 WHERE key = 'quick'", [SLEEP])
    db.execute("SET statement_timeout = '500ms'")
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        report(db)
    assert time.monotonic() - started < CUT_SHORT
    db.execute("RESET statement_timeout")


def test_a_cancel_is_not_swallowed(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    register_metric(db, "sleepy", "SELECT 1", timeout_ms=10_000)
    db.execute("UPDATE _telemetry.vendor_metrics SET query = %s WHERE key = 'sleepy'", [SLEEP])
    with cluster.connect(db.info.dbname) as session:
        pid = session.info.backend_pid
        failure: list[BaseException] = []

        def build() -> None:
            try:
                report(session)
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=build)
        thread.start()
        until = time.monotonic() + 60
        while time.monotonic() < until:  # until the metric's query sleeps: the cancel must land in it
            waiting = db.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            if waiting == ("PgSleep",):
                break
            time.sleep(0.05)
        db.execute("SELECT pg_cancel_backend(%s)", [pid])
        thread.join(10)
        assert len(failure) == 1 and isinstance(failure[0], psycopg.errors.QueryCanceled)
        assert "user request" in str(failure[0])


def test_vendor_registration(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    db.execute("CREATE SCHEMA myext")
    db.execute("CREATE TABLE myext.widgets (id int, weight numeric)")
    db.execute("INSERT INTO myext.widgets SELECT g, g / 4.0 FROM generate_series(1, 10) g")
    assert register_metric(db, "myext_widgets", "SELECT count(*) FROM myext.widgets") == 10
    assert register_metric(
        db, "myext_weights", "SELECT sum(weight) AS total, max(id) AS biggest, NULL::int AS none FROM myext.widgets"
    ) == {"total": 13.75, "biggest": 10, "none": None}
    r = report(db)
    assert r["vendor_metrics"] == {"myext_widgets": 10, "myext_weights": {"total": 13.75, "biggest": 10, "none": None}}
    listed = db.execute(
        "SELECT key, origin, summary, enabled FROM telemetry_metrics WHERE origin = 'registered' ORDER BY key"
    ).fetchall()
    assert listed == [
        ("vendor_metrics.myext_weights", "registered", "Test metric myext_weights.", True),
        ("vendor_metrics.myext_widgets", "registered", "Test metric myext_widgets.", True),
    ]
    declared = [row[0] for row in db.execute("SELECT key FROM telemetry_metrics WHERE origin = 'declared'")]
    assert declared == [m.key for m in METRICS]
    # Registering again replaces; unregistering removes.
    assert register_metric(db, "myext_widgets", "SELECT count(*) * 2 FROM myext.widgets") == 20
    assert scalar(db, "SELECT telemetry_unregister_metric('myext_weights')") is True
    assert scalar(db, "SELECT telemetry_unregister_metric('myext_weights')") is False
    assert report(db)["vendor_metrics"] == {"myext_widgets": 20}


def test_a_registered_query_that_stops_returning_numbers_is_invalid_result(db: psycopg.Connection[Any]) -> None:
    db.execute("CREATE TABLE settings_like (v text)")
    db.execute("INSERT INTO settings_like VALUES ('42')")
    register_metric(db, "drifting", "SELECT max(v)::int FROM public.settings_like")
    db.execute("UPDATE _telemetry.vendor_metrics SET query = 'SELECT max(v) FROM public.settings_like'")
    assert report(db)["vendor_metrics"] == {"drifting": {"error": "invalid_result"}}


def test_only_superusers_register_and_switch(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    with (
        roles(db, "monitor_only LOGIN IN ROLE pg_monitor"),
        cluster.connect(db.info.dbname, user="monitor_only") as conn,
    ):
        assert_denied(
            conn,
            "SELECT telemetry_register_metric('x', 'SELECT 1', 'x')",
            "SELECT telemetry_unregister_metric('x')",
            "SELECT telemetry_set_metric_enabled('relations', false)",
        )
        assert scalar(conn, "SELECT count(*) FROM telemetry_metrics") == len(METRICS)


def test_switching_a_metric_off_and_on(db: psycopg.Connection[Any]) -> None:
    register_metric(db, "gadgets", "SELECT 3")
    assert scalar(db, "SELECT telemetry_set_metric_enabled('relations', false)") is False
    db.execute("SELECT telemetry_set_metric_enabled('vendor_metrics.gadgets', false)")
    db.execute("SELECT telemetry_set_metric_enabled('vendor_metrics.not_yet_registered', false)")
    r = report(db)
    assert "relations" not in r and r["vendor_metrics"] == {}
    assert "access_methods" in r
    off = dict(db.execute("SELECT key, enabled FROM telemetry_metrics").fetchall())
    assert off["relations"] is False and off["vendor_metrics.gadgets"] is False and off["access_methods"] is True
    db.execute("SELECT telemetry_set_metric_enabled('relations', true)")
    db.execute("SELECT telemetry_set_metric_enabled('vendor_metrics.gadgets', true)")
    r = report(db)
    assert "relations" in r and r["vendor_metrics"] == {"gadgets": 3}
    # The whole vendor block too.
    db.execute("SELECT telemetry_set_metric_enabled('vendor_metrics', false)")
    assert "vendor_metrics" not in report(db)


def test_required_and_unknown_keys_cannot_be_switched(db: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.Error, match="required by the collector protocol"):
        db.execute("SELECT telemetry_set_metric_enabled('db_uuid', false)")
    with pytest.raises(psycopg.Error, match="unknown metric"):
        db.execute("SELECT telemetry_set_metric_enabled('no_such_metric', false)")
    db.execute("SELECT telemetry_set_metric_enabled('db_uuid', true)")  # on is always allowed
    assert "db_uuid" in report(db)


def test_switches_survive_dump_and_restore_but_registrations_do_not(
    db: psycopg.Connection[Any], cluster: Cluster
) -> None:
    import subprocess

    db.execute("SELECT telemetry_set_metric_enabled('uptime_days', false)")
    register_metric(db, "kept_only_by_its_vendor", "SELECT 1")
    bindir = cluster.tree.bindir
    conn = ["-h", str(cluster.socketdir), "-p", str(cluster.port), "-U", cluster.user]
    dump = subprocess.run(
        [str(bindir / "pg_dump"), *conn, "-Fc", db.info.dbname], check=True, capture_output=True
    ).stdout
    with cluster.connect() as admin:
        admin.execute('CREATE DATABASE "restored_switches"')
    try:
        restore = subprocess.run(
            [str(bindir / "pg_restore"), *conn, "--exit-on-error", "-d", "restored_switches"],
            input=dump,
            capture_output=True,
        )
        assert restore.returncode == 0, restore.stderr.decode()
        with cluster.connect("restored_switches") as restored:
            r = report(restored)
            assert "uptime_days" not in r and r["vendor_metrics"] == {}
    finally:
        with cluster.connect() as admin:
            admin.execute("DROP DATABASE IF EXISTS restored_switches WITH (FORCE)")
