"""pg_cron drives the tick; the proxy of the server's environment is honoured."""

from __future__ import annotations

import re
import time

from pytest_httpserver import HTTPServer

from tests.cluster import Cluster
from tests.helpers import release_after
from tests.job.helpers import answer, configure

NEWER = release_after()

CRON_CONF = {
    "cron.database_name": "'crondb'",
    "cron.use_background_workers": "on",
    "max_worker_processes": "16",
}


def cron_jobs(conn) -> list[tuple[str, str, str]]:
    return conn.execute("SELECT jobname, schedule, command FROM cron.job ORDER BY jobid").fetchall()


def test_pg_cron_sends_with_no_manual_call_and_follows_the_extension(pg_tree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer(NEWER))
    c = Cluster(pg_tree, name="cron", conf=CRON_CONF).start()
    try:
        with c.database("crondb", extension=False) as conn:
            conn.execute("CREATE EXTENSION pg_cron")
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE EXTENSION telemetry CASCADE")
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
            time.sleep(1)
            outcome = conn.execute(
                "SELECT outcome, trigger FROM _telemetry.attempts ORDER BY id DESC LIMIT 1"
            ).fetchone()
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
    finally:
        c.destroy()


def test_http_proxy_from_the_server_environment_is_used(pg_tree, httpserver: HTTPServer) -> None:
    # The "proxy" is the loopback test server: the request for a host that does not
    # resolve can only arrive there through the proxy setting.
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    proxy = f"http://127.0.0.1:{httpserver.port}"
    c = Cluster(pg_tree, name="proxy", env={"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy}).start()
    try:
        with c.database("proxied") as conn:
            configure(conn, "http://telemetry.invalid/v1/report")
            outcome = conn.execute("SELECT telemetry_send_report()").fetchone()[0]
            assert outcome["outcome"] == "sent", outcome
        [(request, _)] = httpserver.log
        assert request.headers["Host"] == "telemetry.invalid"
    finally:
        c.destroy()
