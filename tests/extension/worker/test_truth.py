"""telemetry_status and the NOTICE name the caller that really runs the tick, on clusters set up as Debian does.

Debian's pg_createcluster trusts the local socket (peer, for the OS user) and
asks for a password on TCP (host ... scram-sha-256): pg_cron, which connects to
localhost over TCP, fails there; the background worker needs no connection.
"""

from __future__ import annotations

from typing import Any

import psycopg
from pytest_httpserver import HTTPServer

from tests.cluster import Cluster
from tests.extension.job.helpers import answer
from tests.extension.worker.helpers import WORKER_CONF, create_database, sent_attempts, wait_for
from tests.helpers import Notices, one_row, scalar
from tests.pgtree import PgTree

DEBIAN_HBA = """\
local   all             all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
"""


def _debian(cluster: Cluster) -> Cluster:
    cluster.start()
    (cluster.datadir / "pg_hba.conf").write_text(DEBIAN_HBA)
    cluster.reload()
    return cluster


def _notice(conn: psycopg.Connection[Any]) -> str:
    notices = Notices(conn)
    conn.execute("SELECT _telemetry.announce()")
    [text] = [n for n in notices.of("NOTICE") if n.startswith("telemetry:")]
    return text


def test_a_failing_pg_cron_is_named_as_failing_with_the_fix(pg_tree: PgTree) -> None:
    conf = {
        "shared_preload_libraries": "'pg_cron'",
        "session_preload_libraries": "'telemetry'",
        "cron.database_name": "'crondebian'",
    }
    cluster = _debian(Cluster(pg_tree, name="crondebian", conf=conf))
    try:
        with cluster.database("crondebian", extension=False) as conn:
            conn.execute("CREATE EXTENSION pg_cron")
            conn.execute("CREATE EXTENSION telemetry CASCADE")
            assert scalar(conn, "SELECT tick_caller FROM telemetry_status") == ("pg_cron job in this database")
            # Every minute: pg_cron 1.4's finest.
            conn.execute("SELECT cron.schedule('telemetry', '* * * * *', 'SELECT _telemetry.tick()')")
            wait_for(
                lambda: scalar(conn, "SELECT count(*) FROM cron.job_run_details WHERE status = 'failed'"),
                "a failed pg_cron run",
                seconds=150,
            )
            caller, command = one_row(conn, "SELECT tick_caller, tick_command FROM telemetry_status")
            assert caller is None
            assert "pg_cron's runs of the tick fail here (connection failed)" in command, command
            assert "shared_preload_libraries" in command
            text = _notice(conn)
            assert "nothing that works calls the tick" in text and "connection failed" in text, text
            conn.execute("SELECT cron.unschedule('telemetry')")
    finally:
        cluster.destroy()


def test_the_worker_sends_where_tcp_needs_a_password(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    cluster = _debian(Cluster(pg_tree, name="workerdebian", conf=WORKER_CONF))
    try:
        create_database(cluster, "workerdebian", httpserver.url_for("/v1/report"))
        wait_for(lambda: sent_attempts(cluster, "workerdebian"), "the worker's report")
        assert sent_attempts(cluster, "workerdebian") == [("job", "sent")] and len(httpserver.log) == 1
        with cluster.connect("workerdebian") as conn:
            caller = scalar(conn, "SELECT tick_caller FROM telemetry_status")
            assert caller.startswith("the background worker"), caller
            assert "The tick is called by: the background worker" in _notice(conn)
            # No pg_cron entry was made where the worker runs.
            assert scalar(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'") == 0
    finally:
        cluster.destroy()


def test_no_pg_cron_entry_where_the_worker_runs(pg_tree: PgTree) -> None:
    conf = {**WORKER_CONF, "shared_preload_libraries": "'telemetry,pg_cron'", "cron.database_name": "'both'"}
    with Cluster(pg_tree, name="both", conf=conf) as cluster, cluster.database("both", extension=False) as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        assert scalar(conn, "SELECT count(*) FROM cron.job") == 0
        assert scalar(conn, "SELECT tick_caller FROM telemetry_status").startswith("the background worker")
