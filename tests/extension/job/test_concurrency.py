"""Concurrent ticks, locks during the network step, cancel and shutdown during a send."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.cluster import Cluster
from tests.extension.job.helpers import (
    answer,
    configure,
    in_thread,
    tick_on_hung_peer,
)
from tests.pgtree import PgTree


def test_two_ticks_at_once_make_one_send(db: psycopg.Connection[Any], cluster: Cluster, httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1)
        return Response(json.dumps(answer()), content_type="application/json")

    httpserver.expect_request("/v1/report").respond_with_handler(slow)
    configure(db, httpserver.url_for("/v1/report"))
    runs = [in_thread(cluster, db.info.dbname, "SELECT telemetry_tick()") for _ in range(4)]
    for thread, _ in runs:
        thread.join(30)
    outcomes = sorted(result["value"]["outcome"] for _, result in runs)
    assert outcomes.count("sent") == 1, outcomes
    assert set(outcomes) <= {"sent", "busy", "not_due"}
    assert len(httpserver.log) == 1


def test_no_table_or_row_lock_is_held_during_the_network_step(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    with tick_on_hung_peer(cluster, db, "5 s") as result:
        held = db.execute(
            "SELECT locktype, relation::regclass::text, mode FROM pg_locks"
            " WHERE pid = %s AND locktype IN ('relation', 'tuple')",
            [result["pid"]],
        ).fetchall()
        # Only the send lock: an empty table nothing reads, that makes a second send skip.
        assert held == [("relation", "_telemetry.send_lock", "ShareUpdateExclusiveLock")]
        with db.transaction():
            db.execute(
                "LOCK TABLE _telemetry.schedule, _telemetry.attempts, _telemetry.options,"
                " _telemetry.instance IN ACCESS EXCLUSIVE MODE NOWAIT"
            )
    assert result["value"]["outcome"] == "failed"


# The largest deadline the option takes, and a bound that only tells "the cancel or the shutdown
# ended the send" from "the deadline or the peer (which hangs up after 60 s) did".
FAR_DEADLINE = "60 s"
WELL_BEFORE_THE_PEER_HANGS_UP = 45


def test_cancel_ends_a_send_at_once(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    with tick_on_hung_peer(cluster, db, FAR_DEADLINE) as result:
        db.execute("SELECT pg_cancel_backend(%s)", [result["pid"]])
    assert isinstance(result["error"], psycopg.errors.QueryCanceled)
    assert result["seconds"] < WELL_BEFORE_THE_PEER_HANGS_UP


def test_fast_shutdown_is_not_held_hostage(pg_tree: PgTree) -> None:
    with Cluster(pg_tree, name="shutdown") as c:
        with c.connect() as admin:
            admin.execute("CREATE EXTENSION telemetry CASCADE")
            with tick_on_hung_peer(c, admin, FAR_DEADLINE) as result:
                started = time.monotonic()
                c.stop()  # pg_ctl stop -m fast
                stopped_after = time.monotonic() - started
        assert stopped_after < WELL_BEFORE_THE_PEER_HANGS_UP, stopped_after
        assert isinstance(result["error"], psycopg.errors.AdminShutdown)
