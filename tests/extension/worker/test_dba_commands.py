"""Only a DBA's command that can succeed stops a visit, and it does so without a log line."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests import peers
from tests.cluster import Cluster
from tests.extension.worker.helpers import create_database, wait_for, worker_cluster, workers
from tests.helpers import scalar
from tests.pgtree import PgTree


@pytest.fixture(scope="module")
def cluster(pg_tree: PgTree) -> Iterator[Cluster]:
    with worker_cluster(pg_tree, name="dba-commands") as started:
        with started.connect() as admin:
            admin.execute("CREATE ROLE plain LOGIN")
        yield started


@pytest.fixture
def hung(cluster: Cluster) -> Iterator[tuple[str, peers.RawPeer]]:
    """A database whose visit hangs in its send (deadline 60 s)."""
    peer = peers.RawPeer(peers.hang)
    name = "hung_send"
    try:
        create_database(cluster, name, peer.url, deadline="60 s")
        wait_for(
            lambda: peer.connections > 0 and _visitor_pid(cluster, name),
            "the visit's send hanging",
        )
        yield name, peer
    finally:
        peer.close()
        with cluster.connect() as admin:
            admin.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
            )


def _visitor_pid(cluster: Cluster, dbname: str) -> int | None:
    with cluster.connect() as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'telemetry visit' AND datname = %s",
            [dbname],
        ).fetchone()
    return row[0] if row else None


def _log_until_marker(cluster: Cluster, offset: int, marker: str) -> str:
    """The log since `offset`, once a line written now has arrived (so every earlier line has)."""
    with cluster.connect() as conn:
        conn.execute(psycopg.sql.SQL("DO $$BEGIN RAISE LOG {}; END$$").format(psycopg.sql.Literal(marker)))

    def arrived() -> str:
        log = cluster.log_since(offset)
        return log if marker in log else ""

    return wait_for(arrived, "the marker line")


@pytest.mark.parametrize(
    ("user", "command", "error"),
    [
        ("plain", "DROP DATABASE {}", psycopg.errors.InsufficientPrivilege),
        (
            "plain",
            "ALTER DATABASE {} RENAME TO elsewhere",
            psycopg.errors.InsufficientPrivilege,
        ),
        (
            None,
            "DROP DATABASE {}",
            psycopg.errors.ActiveSqlTransaction,
        ),  # in a transaction block
    ],
)
def test_commands_that_cannot_succeed_leave_the_visit_alone(
    cluster: Cluster,
    hung: tuple[str, peers.RawPeer],
    user: str | None,
    command: str,
    error: type[Exception],
) -> None:
    name, peer = hung
    pid = _visitor_pid(cluster, name)
    statement = psycopg.sql.SQL(command).format(psycopg.sql.Identifier(name))
    with cluster.connect(user=user) as conn, pytest.raises(error):
        if user is None:
            with conn.transaction():
                conn.execute(statement)
        else:
            conn.execute(statement)
    # The same visit, still in its one send.
    assert _visitor_pid(cluster, name) == pid
    assert peer.connections == 1


def test_several_databases_refused_at_once(cluster: Cluster) -> None:
    """A DBA's open rename refuses its database while another command refuses another one."""

    def commits(name: str) -> int:
        with cluster.connect() as conn:
            return int(scalar(conn, "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [name]))

    with cluster.connect() as admin:
        for name in ("renamed_in_block", "dropped_later", "visited_after"):
            admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    with cluster.connect() as dba:
        dba.execute("BEGIN")
        # Holds the database's lock until COMMIT: a visit there would wait for it.
        dba.execute("ALTER DATABASE renamed_in_block RENAME TO renamed_in_block_2")
        try:
            with cluster.connect() as admin:
                admin.execute("DROP DATABASE dropped_later")
            # Rounds go on past the database being renamed (refused, never waited on).
            start = commits("visited_after")
            wait_for(
                lambda: commits("visited_after") >= start + 3,
                "three more visits of another database",
            )
            assert commits("visited_after") >= start + 3
        finally:
            dba.execute("COMMIT")
    with cluster.connect() as admin:
        for name in ("renamed_in_block_2", "visited_after"):
            admin.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def test_a_dba_drop_ends_the_visit_without_a_line(cluster: Cluster, hung: tuple[str, peers.RawPeer]) -> None:
    name, _ = hung
    offset = cluster.log_offset()
    with cluster.connect() as admin:
        admin.execute(psycopg.sql.SQL("DROP DATABASE {}").format(psycopg.sql.Identifier(name)))
    assert _visitor_pid(cluster, name) is None
    log = _log_until_marker(cluster, offset, "after the drop")
    for word in ("FATAL", "ERROR", "telemetry", "exited with exit code"):
        assert word not in log, log


def test_a_cancel_does_not_end_the_launcher(cluster: Cluster) -> None:
    def launcher_pid() -> int:
        with cluster.connect() as conn:
            return int(scalar(conn, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'telemetry launcher'"))

    def commits() -> int:
        with cluster.connect() as conn:
            return int(scalar(conn, "SELECT xact_commit FROM pg_stat_database WHERE datname = 'rounds'"))

    with cluster.connect() as admin:
        admin.execute("CREATE DATABASE rounds")  # only visits connect to it: one commit each
    pid = launcher_pid()
    offset = cluster.log_offset()
    with cluster.connect() as conn:
        assert scalar(conn, "SELECT pg_cancel_backend(%s)", [pid]) is True
    # Further rounds visit the database: the launcher went on.
    start = commits()
    wait_for(lambda: commits() >= start + 3, "three more visits")
    assert launcher_pid() == pid
    assert [kind for kind, _ in workers(cluster)].count("telemetry launcher") == 1
    log = _log_until_marker(cluster, offset, "after the cancel")
    assert "FATAL" not in log and "exited with exit code" not in log, log
