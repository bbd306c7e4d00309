"""pg_cron drives the tick; the proxy of the server's environment is honoured."""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
from pytest_httpserver import HTTPServer

from tests.cluster import Cluster
from tests.extension.job.helpers import answer, configure
from tests.helpers import Notices, release_after, scalar
from tests.pgtree import PgTree

NEWER = release_after()

# The pg_cron path: telemetry not in shared_preload_libraries (so no background worker).
CRON_CONF = {
    "shared_preload_libraries": "'pg_cron'",
    "session_preload_libraries": "'telemetry'",
    "cron.database_name": "'crondb'",
    "cron.use_background_workers": "on",
    "max_worker_processes": "16",
}


def cron_jobs(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    return conn.execute("SELECT jobname, schedule, command FROM cron.job ORDER BY jobid").fetchall()


def test_pg_cron_sends_with_no_manual_call_and_follows_the_extension(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer(NEWER))
    with Cluster(pg_tree, name="cron", conf=CRON_CONF) as c, c.database("crondb", extension=False) as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        conn.execute("CREATE EXTENSION pg_stat_statements")
        notices = Notices(conn)
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        [text] = [n for n in notices.of("NOTICE") if n.startswith("telemetry:")]
        assert "The tick is called by: pg_cron job in this database." in text
        assert conn.execute("SELECT tick_caller, tick_command FROM telemetry_status").fetchone() == (
            "pg_cron job in this database",
            None,
        )
        [(name, schedule, command)] = cron_jobs(conn)
        assert (name, command) == ("telemetry", "SELECT _telemetry.tick()")
        assert re.fullmatch(r"(\d|1[0-4])-59/15 \* \* \* \*", schedule), schedule
        # Short intervals for the test: grace 0 and a tick every minute (pg_cron 1.4's finest).
        configure(conn, httpserver.url_for("/v1/report"))
        conn.execute("SELECT cron.schedule('telemetry', '* * * * *', 'SELECT _telemetry.tick()')")
        deadline = time.monotonic() + 150
        while not httpserver.log and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(httpserver.log) == 1, "no report arrived from the pg_cron tick"
        outcome = None
        while outcome is None and time.monotonic() < deadline + 60:  # the tick commits after the answer
            outcome = conn.execute(
                "SELECT outcome, trigger FROM _telemetry.attempts ORDER BY id DESC LIMIT 1"
            ).fetchone()
            time.sleep(0.1)
        assert outcome == ("sent", "job")
        # The out-of-date WARNING is in the server log once (pg_cron does not log a copy).
        warned = [line for line in c.log().splitlines() if f"the newest release is {NEWER}" in line]
        assert len(warned) == 1, warned
        # Dropping another extension leaves the entry; dropping ours removes it.
        conn.execute("DROP EXTENSION pg_stat_statements")
        assert [job[0] for job in cron_jobs(conn)] == ["telemetry"]
        conn.execute("DROP EXTENSION telemetry")
        assert cron_jobs(conn) == []
        # And creating it again registers it again.
        conn.execute("CREATE EXTENSION telemetry")
        assert [job[0] for job in cron_jobs(conn)] == ["telemetry"]
        # pg_cron shows each role its own jobs only; a pg_monitor member still learns the truth.
        conn.execute("CREATE ROLE cron_monitor LOGIN IN ROLE pg_monitor")
        with c.connect("crondb", user="cron_monitor") as monitor:
            assert scalar(monitor, "SELECT tick_caller FROM telemetry_status") == ("pg_cron job in this database")
        # Another database of the cluster: the NOTICE's command, run where it says, schedules its tick.
        with c.database("otherdb", extension=False) as other:
            notices = Notices(other)
            other.execute("CREATE EXTENSION telemetry CASCADE")
            [text] = [n for n in notices.of("NOTICE") if n.startswith("telemetry:")]
            found = re.search(r"run in database crondb: (SELECT cron\.schedule_in_database\(.*\);)", text)
            assert found, text
            conn.execute(found.group(1))
            assert conn.execute(
                "SELECT database, schedule, command FROM cron.job WHERE jobname = 'telemetry-otherdb'"
            ).fetchone() == ("otherdb", "*/15 * * * *", "SELECT _telemetry.tick()")


def test_http_proxy_from_the_server_environment_is_used(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    # The "proxy" is the loopback test server: the request for a host that does not
    # resolve can only arrive there through the proxy setting.
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    proxy = f"http://127.0.0.1:{httpserver.port}"
    with Cluster(pg_tree, name="proxy", env={"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy}) as c:
        with c.database("proxied") as conn:
            configure(conn, "http://telemetry.invalid/v1/report")
            outcome = scalar(conn, "SELECT telemetry_send_report()")
            assert outcome["outcome"] == "sent", outcome
        [(request, _)] = httpserver.log
        assert request.headers["Host"] == "telemetry.invalid"


def test_a_plain_roles_drop_schema_and_drop_owned_log_nothing(pg_tree: PgTree) -> None:
    """The event triggers behind the pg_cron entry fire for every role's DROP; a plain role's is none of ours."""
    with Cluster(pg_tree, name="cron-plain", conf=CRON_CONF) as c, c.database("crondb", extension=False) as conn:
        conn.execute("CREATE EXTENSION pg_cron")
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        conn.execute("CREATE ROLE ddl_plain LOGIN")
        conn.execute("GRANT CREATE ON DATABASE crondb TO ddl_plain")
        # The database's owner, not a superuser: through pg_database_owner it owns public, our schema.
        conn.execute("CREATE ROLE ddl_owner LOGIN")
        conn.execute("ALTER DATABASE crondb OWNER TO ddl_owner")
        offset = c.log_offset()
        with c.connect("crondb", user="ddl_plain") as plain:
            plain.execute("CREATE SCHEMA mine")
            plain.execute("CREATE TABLE mine.t (i int)")
            plain.execute("DROP SCHEMA mine CASCADE")
            plain.execute("CREATE SCHEMA again")
            plain.execute("DROP OWNED BY ddl_plain")
        with c.connect("crondb", user="ddl_owner") as owner:
            owner.execute("CREATE SCHEMA theirs")
            owner.execute("DROP SCHEMA theirs")
        assert [line for line in c.log_since(offset).splitlines() if "telemetry" in line] == []
        assert [job[0] for job in cron_jobs(conn)] == ["telemetry"]
        # The superuser's DROP of our extension still takes the entry with it.
        conn.execute("DROP EXTENSION telemetry")
        assert cron_jobs(conn) == []
