"""pg_upgrade keeps database oids, so an upgraded cluster keeps its identity (README, template copies).

A real pg_upgrade between two clusters of the major under test: the identity check is the same
whatever the majors, and a copy (a database whose oid differs from the recorded one) is what it
must not be taken for.
"""

from __future__ import annotations

import subprocess

from pytest_httpserver import HTTPServer

from tests.cluster import Cluster
from tests.extension.job.helpers import answer, attempts, first_report_sent, tick
from tests.helpers import report
from tests.pgtree import PgTree, as_server_user

SERVER_OPTIONS = "-c shared_preload_libraries=telemetry"


def test_pg_upgrade_keeps_the_identity(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    old = Cluster(pg_tree, name="before-upgrade").start()
    new = Cluster(pg_tree, name="after-upgrade")
    try:
        with first_report_sent(old, "kept", httpserver.url_for("/v1/report")) as conn:
            before = report(conn)
            [sent_before] = attempts(conn)
        old.stop()
        new.executor.init_directory()
        new._set_data_checksums()  # as the old one's: initdb of PostgreSQL 18 turns them on
        upgraded = subprocess.run(
            as_server_user(
                [
                    str(pg_tree.bindir / "pg_upgrade"),
                    *("-b", str(pg_tree.bindir), "-B", str(pg_tree.bindir)),
                    *("-d", str(old.datadir), "-D", str(new.datadir), "-U", old.user),
                    *("-p", str(old.port), "-P", str(new.port), "-s", str(new.base)),
                    *("-o", SERVER_OPTIONS, "-O", SERVER_OPTIONS),
                ]
            ),
            cwd=new.base,
            capture_output=True,
            text=True,
            check=False,
        )
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        new.start()
        offset = new.log_offset()
        with new.connect("kept") as conn:
            after = report(conn)
            assert (after["db_uuid"], after["exported_db_uuid"]) == (before["db_uuid"], before["exported_db_uuid"])
            assert tick(conn)["outcome"] == "not_due"  # its schedule, not a copy's first tick
            assert [a["id"] for a in attempts(conn)] == [sent_before["id"]]  # its audit trail
        assert "is a copy of another" not in new.log_since(offset)
    finally:
        new.destroy()
        old.destroy()
