"""The NOTICE and telemetry_status tell whether anything calls the tick, and the exact command when nothing does."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.cluster import Cluster
from tests.helpers import Notices, one_row, roles, scalar
from tests.pgtree import PgTree


def _status(conn: psycopg.Connection[Any], *columns: str) -> tuple[Any, ...]:
    row: tuple[Any, ...] = one_row(conn, f"SELECT {', '.join(columns)} FROM telemetry_status")
    return row


@pytest.fixture(scope="module")
def cron_only(pg_tree: PgTree) -> Iterator[Cluster]:
    """pg_cron preloaded (living in database postgres), telemetry not: no background worker."""
    conf = {"shared_preload_libraries": "'pg_cron'", "session_preload_libraries": "'telemetry'"}
    with Cluster(pg_tree, name="cronly", conf=conf) as c:
        yield c


def test_without_a_caller_the_notice_and_status_give_the_pg_cron_command(cron_only: Cluster) -> None:
    cluster = cron_only
    with cluster.database("truth_cron", extension=False) as conn:
        notices = Notices(conn)
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        [text] = [n for n in notices.of("NOTICE") if n.startswith("telemetry:")]
        command = (
            "in database postgres: SELECT cron.schedule_in_database('telemetry-truth_cron', '*/15 * * * *', "
            "'SELECT _telemetry.tick()', 'truth_cron');"
        )
        assert "nothing calls the tick in this database yet" in text and command in text
        assert _status(conn, "tick_caller", "tick_last_seen", "tick_command") == (None, None, command)
        # A tick seen (any scheduler) is a caller; a pg_monitor member reads the same.
        conn.execute("SELECT _telemetry.tick()")
        with roles(conn, "truth_monitor LOGIN IN ROLE pg_monitor"):
            with cluster.connect("truth_cron", user="truth_monitor") as monitor:
                caller, seen, advice = _status(monitor, "tick_caller", "tick_last_seen", "tick_command")
            assert caller == "a scheduler: the tick ran lately" and seen is not None and advice is None


def test_pg_monitor_reads_the_report_in_a_schema_of_its_own(cluster: Cluster) -> None:
    with cluster.database("truth_schema", extension=False) as conn:
        conn.execute("CREATE SCHEMA tools")
        conn.execute("REVOKE ALL ON SCHEMA tools FROM PUBLIC")
        conn.execute("CREATE EXTENSION telemetry SCHEMA tools CASCADE")
        conn.execute("CREATE ROLE schema_monitor LOGIN IN ROLE pg_monitor")
        conn.execute("CREATE ROLE schema_plain LOGIN")
        try:
            with cluster.connect("truth_schema", user="schema_monitor") as monitor:
                assert scalar(monitor, "SELECT tools.get_report() ->> 'metrics_level'") == "basic"
                assert scalar(monitor, "SELECT metrics_level FROM tools.telemetry_status") == "basic"
                assert not scalar(monitor, "SELECT has_schema_privilege('tools', 'CREATE')")
            with cluster.connect("truth_schema", user="schema_plain") as plain:
                assert not scalar(plain, "SELECT has_schema_privilege('tools', 'USAGE')")
        finally:
            conn.execute("DROP EXTENSION telemetry")
            conn.execute("DROP OWNED BY schema_monitor, schema_plain")
            conn.execute("DROP ROLE schema_monitor")
            conn.execute("DROP ROLE schema_plain")


def test_without_pg_cron_the_crontab_line_given_works(pg_tree: PgTree) -> None:
    conf = {"shared_preload_libraries": "''", "session_preload_libraries": "'telemetry'"}
    with Cluster(pg_tree, name="nocron", conf=conf) as c, c.database("nocron", extension=False) as conn:
        notices = Notices(conn)
        conn.execute("CREATE EXTENSION telemetry CASCADE")
        [text] = [n for n in notices.of("NOTICE") if n.startswith("telemetry:")]
        line = "*/15 * * * * psql -d nocron -XAtqc 'SELECT _telemetry.tick()'"
        assert "in the crontab of the server's OS user: " + line in text
        [command] = _status(conn, "tick_command")
        assert command.endswith(line)
        # Run the line's command as cron would (connection defaults from the environment).
        argv = shlex.split(line.split(" ", 5)[5])
        env = {**os.environ, "PGHOST": str(c.socketdir), "PGPORT": str(c.port), "PGUSER": c.user}
        out = subprocess.run([str(pg_tree.bindir / argv[0]), *argv[1:]], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert re.search(r'"outcome": "not_due"', out.stdout)
        assert _status(conn, "tick_caller", "tick_command") == ("a scheduler: the tick ran lately", None)
