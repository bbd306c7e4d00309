"""CREATE EXTENSION, \\dx, the NOTICE, the schemas, DROP EXTENSION."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.cluster import Cluster
from tests.helpers import EXTENSION_VERSION, Notices, one_row, report, scalar


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Every object in the database that is not a system one, by kind."""
    return {
        "namespaces": scalar(conn, "SELECT array_agg(nspname ORDER BY nspname) FROM pg_namespace WHERE oid >= 16384"),
        "classes": scalar(conn, "SELECT count(*) FROM pg_class WHERE oid >= 16384"),
        "procs": scalar(
            conn,
            "SELECT array_agg(proname ORDER BY proname) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
            "WHERE p.oid >= 16384 AND l.lanname <> 'plpython3u' AND p.proname NOT LIKE 'plpython3%'",
        ),
        "types": scalar(conn, "SELECT count(*) FROM pg_type WHERE oid >= 16384"),
        "extensions": scalar(conn, "SELECT array_agg(extname ORDER BY extname) FROM pg_extension"),
        "event_triggers": scalar(conn, "SELECT array_agg(evtname ORDER BY evtname) FROM pg_event_trigger"),
        "config_dump_rows": scalar(conn, "SELECT count(*) FROM pg_extension WHERE extconfig IS NOT NULL"),
    }


def test_create_cascade_in_default_schema_and_dx(cluster: Cluster) -> None:
    with cluster.database("ext_create", extension=False) as conn:
        assert scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'plpython3u'") == 0
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        # With the default search_path, no qualification needed; the result is jsonb.
        assert scalar(conn, "SELECT pg_typeof(get_report())::text") == "jsonb"
        assert (
            scalar(
                conn,
                "SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE proname = 'get_report'",
            )
            == "public"
        )
        assert scalar(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = '_telemetry'") == 1
        version, comment = one_row(
            conn,
            "SELECT extversion, obj_description(oid, 'pg_extension') FROM pg_extension WHERE extname = 'telemetry'",
        )
        assert version == EXTENSION_VERSION
        assert "telemetry" in comment.lower() and "\n" not in comment
        assert report(conn)["extension_version"] == EXTENSION_VERSION


def test_user_facing_functions_follow_the_extension_schema(cluster: Cluster) -> None:
    with cluster.database("ext_schema", extension=False) as conn:
        conn.execute("CREATE SCHEMA tools")
        conn.execute("CREATE EXTENSION telemetry SCHEMA tools CASCADE")
        assert scalar(conn, "SELECT tools.get_report() ->> 'metrics_level'") == "basic"
        # Internal state stays in the fixed private schema.
        assert scalar(conn, "SELECT count(*) FROM _telemetry.instance") == 1


def test_create_notice_says_what_is_sent_when_and_how_to_turn_off(cluster: Cluster) -> None:
    with cluster.database("ext_notice", extension=False) as conn:
        notices = Notices(conn)
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        [text] = [n for n in notices.of("NOTICE") if n.startswith("telemetry:")]
        assert "ON" in text
        assert "SELECT get_report()" in text
        assert "no names" in text
        assert "first report goes out no earlier than" in text
        assert "ALTER SYSTEM SET telemetry.metrics_level = off" in text
        assert "pg_reload_conf()" in text


def test_create_notice_when_off_says_nothing_is_sent(cluster: Cluster) -> None:
    with cluster.connect() as admin:
        admin.execute("CREATE DATABASE ext_notice_off")
        admin.execute("ALTER DATABASE ext_notice_off SET telemetry.metrics_level = off")
    try:
        with cluster.connect("ext_notice_off") as conn:
            notices = Notices(conn)
            conn.execute("CREATE EXTENSION telemetry CASCADE")
            [text] = [n for n in notices.of("NOTICE") if n.startswith("telemetry:")]
            assert "OFF" in text and "nothing will be sent" in text
            assert "from database" in text
    finally:
        with cluster.connect() as admin:
            admin.execute("DROP DATABASE ext_notice_off WITH (FORCE)")


def test_drop_extension_leaves_nothing_behind(cluster: Cluster) -> None:
    with cluster.database("ext_drop", extension=False) as conn:
        conn.execute("CREATE EXTENSION plpython3u")
        before = snapshot(conn)
        conn.execute("CREATE EXTENSION telemetry")
        report(conn)
        assert snapshot(conn) != before
        conn.execute("DROP EXTENSION telemetry")
        assert snapshot(conn) == before


def test_user_facing_functions_say_they_are_telemetry_s(cluster: Cluster) -> None:
    with cluster.database("ext_names", extension=False) as conn:
        # A function of the user's under a name 0.1.0 used: the renaming migration leaves it alone.
        conn.execute("CREATE EXTENSION plpython3u")
        conn.execute("CREATE FUNCTION public.run_job() RETURNS int LANGUAGE sql AS 'SELECT 42'")
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        assert scalar(conn, "SELECT public.run_job()") == 42
        members = {
            row[0]
            for row in conn.execute(
                """SELECT p.proname::text FROM pg_depend d
                     JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'telemetry'
                     JOIN pg_proc p ON p.oid = d.objid AND d.classid = 'pg_proc'::regclass
                     JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'public'
                    WHERE d.deptype = 'e'"""
            )
        }
        assert members == {
            "get_report",
            "telemetry_tick",
            "telemetry_send_report",
            "telemetry_set_option",
            "telemetry_register_metric",
            "telemetry_unregister_metric",
            "telemetry_set_metric_enabled",
        }
