"""A template copy (CREATE DATABASE ... TEMPLATE) is a database of its own: identity, schedule, audit."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
from pytest_httpserver import HTTPServer

from tests import peers
from tests.cluster import Cluster
from tests.extension.job.helpers import (
    answer,
    attempts,
    configure,
    first_report_sent,
    in_thread,
    telemetry_log_lines,
    tick,
)
from tests.helpers import one_row, report, scalar


def _instance(conn: psycopg.Connection[Any]) -> tuple[str, float]:
    db_uuid, jitter_fraction = one_row(
        conn, "SELECT i.db_uuid::text, s.jitter_fraction FROM _telemetry.instance i, _telemetry.schedule s"
    )
    return db_uuid, jitter_fraction


def test_template_copies_get_their_own_identity_schedule_and_audit(cluster: Cluster, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    names = ("copy_orig", "copy_a", "copy_b")
    try:
        with first_report_sent(cluster, "copy_orig", httpserver.url_for("/v1/report")) as orig:
            orig.execute("SELECT telemetry_set_metric_enabled('relations', false)")
            original = report(orig)
            orig_uuid, orig_fraction = _instance(orig)
            orig.execute("CREATE ROLE copy_monitor LOGIN IN ROLE pg_monitor")
        cluster.create_database("copy_a", template="copy_orig")
        cluster.create_database("copy_b", template="copy_orig")
        # Before any tick, get_report() in a copy shows the identity the copy will send, even to a
        # role that cannot write: not the template's.
        with cluster.connect("copy_a", user="copy_monitor") as monitor:
            shown = report(monitor)
        with cluster.connect("copy_b") as copy_b:
            shown_b = report(copy_b)
        assert shown["db_uuid"] != orig_uuid and shown_b["db_uuid"] not in (orig_uuid, shown["db_uuid"])
        # What a copy keeps: lineage (like a restore) and the DBA's choices.
        assert shown["exported_db_uuid"] == original["exported_db_uuid"]
        assert shown["installed_time"] == original["installed_time"]
        assert "relations" not in shown
        with cluster.connect("copy_a") as copy_a:
            assert len(attempts(copy_a)) == 1  # the template's audit row, until the copy's first tick
            offset = cluster.log_offset()
            outcome = tick(copy_a)
            assert outcome["outcome"] == "not_due", outcome
            db_uuid, fraction = _instance(copy_a)
            assert db_uuid == shown["db_uuid"] and fraction != orig_fraction
            assert attempts(copy_a) == []
            assert scalar(copy_a, "SELECT count(*) FROM _telemetry.latest_version") == 0
            assert scalar(copy_a, "SELECT value FROM _telemetry.options WHERE name = 'endpoint'") == (
                httpserver.url_for("/v1/report")
            )
            assert report(copy_a)["db_uuid"] == shown["db_uuid"]
            # grace 0 and jitter 0 were kept: the next tick sends, under the copy's own identity.
            assert tick(copy_a)["outcome"] == "sent"
            [row] = attempts(copy_a)
            assert json.loads(row["body"])["db_uuid"] == shown["db_uuid"]
            # One LOG line says so, at the first tick only (the second, which sent, logged nothing of it).
            told = [line for line in telemetry_log_lines(cluster, offset) if "is a copy of another" in line]
            assert len(told) == 1 and " LOG: " in told[0] and " copy_a " in told[0], told
        sent = [json.loads(request.get_data()) for request, _ in httpserver.log]
        assert [body["db_uuid"] for body in sent] == [orig_uuid, shown["db_uuid"]]
        # The original is untouched.
        with cluster.connect("copy_orig") as orig:
            assert _instance(orig) == (orig_uuid, orig_fraction)
            assert tick(orig)["outcome"] == "not_due"
            assert len(attempts(orig)) == 1
    finally:
        cluster.drop_databases(*names)
        with cluster.connect() as admin:
            admin.execute("DROP ROLE IF EXISTS copy_monitor")


def test_a_copys_first_send_now_locks_no_row_while_sending(cluster: Cluster, httpserver: HTTPServer) -> None:
    """telemetry_send_report() in a copy: the copy's identity is written after the network step, not before."""
    httpserver.expect_request("/v1/report").respond_with_json(answer())
    peer = peers.RawPeer(peers.hang)
    try:
        # An audit row and a newest version, for the copy to forget.
        with first_report_sent(cluster, "lock_orig", httpserver.url_for("/v1/report")) as orig:
            configure(orig, peer.url, deadline="5 s")
        cluster.create_database("lock_copy", template="lock_orig")
        with cluster.connect("lock_copy") as other:
            shown = report(other)
            thread, result = in_thread(cluster, "lock_copy", "SELECT telemetry_send_report()")
            while peer.connections == 0:
                time.sleep(0.05)
            # The send is in its network step: every row it will write can be locked and written now.
            other.execute("SET lock_timeout = '2s'")
            with other.transaction():
                for table in ("instance", "schedule", "attempts", "latest_version"):
                    other.execute(f"SELECT * FROM _telemetry.{table} FOR UPDATE")
                other.execute("UPDATE _telemetry.schedule SET failures = failures")
                other.execute("UPDATE _telemetry.instance SET created_at = created_at")
                raise psycopg.Rollback
            thread.join(30)
            assert result["value"]["outcome"] == "failed", result
            # Then the copy took its identity, the one the report carried, and recorded its one attempt.
            [row] = attempts(other)
            assert json.loads(row["body"])["db_uuid"] == shown["db_uuid"] == _instance(other)[0]
            assert scalar(other, "SELECT failures FROM _telemetry.schedule") == 1
            assert scalar(other, "SELECT count(*) FROM _telemetry.latest_version") == 0
    finally:
        peer.close()
        cluster.drop_databases("lock_orig", "lock_copy")
