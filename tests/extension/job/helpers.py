"""What the job's tests share: options for a test peer, what it answers, a tick, the audit rows, a tick elsewhere."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pytest_httpserver import HTTPServer

from tests import peers
from tests.cluster import Cluster
from tests.helpers import EXTENSION_VERSION, scalar

DEADLINE = 2  # seconds, set as the job's deadline option in these tests


def configure(conn: psycopg.Connection[Any], endpoint: str, **options: str) -> None:
    settings = {"endpoint": endpoint, "grace": "0", "jitter": "0", "deadline": f"{DEADLINE} s", **options}
    for name, value in settings.items():
        conn.execute("SELECT telemetry_set_option(%s, %s)", [name, value])


def peer_answers(conn: psycopg.Connection[Any], httpserver: HTTPServer, body: Any, **options: str) -> None:
    """The job sends to `httpserver`, whose /v1/report answers `body` as JSON."""
    httpserver.expect_request("/v1/report").respond_with_json(body)
    configure(conn, httpserver.url_for("/v1/report"), **options)


def tick(conn: psycopg.Connection[Any], function: str = "telemetry_tick") -> dict[str, Any]:
    outcome: dict[str, Any] = scalar(conn, f"SELECT {function}()")
    return outcome


def sent_and_told(outcome: dict[str, Any]) -> tuple[Any, Any, Any]:
    """A send's outcome, the newest release the answer told of, and whether this database is up to date."""
    return outcome["outcome"], outcome["latest_version"], outcome["up_to_date"]


@contextmanager
def first_report_sent(cluster: Cluster, dbname: str, endpoint: str) -> Iterator[psycopg.Connection[Any]]:
    """A new database `dbname` (kept after the block) with the extension, its first report sent to `endpoint`."""
    cluster.create_database(dbname, extension=True)
    with cluster.connect(dbname) as conn:
        configure(conn, endpoint)
        assert tick(conn)["outcome"] == "sent"
        yield conn


def attempts(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute("SELECT * FROM _telemetry.attempts ORDER BY id").fetchall()


def seconds_until(conn: psycopg.Connection[Any], column: str = "next_due") -> float:
    seconds: float = scalar(
        conn, f"SELECT extract(epoch FROM {column} - clock_timestamp())::float8 FROM _telemetry.schedule"
    )
    return seconds


def telemetry_log_lines(cluster: Cluster, offset: int) -> list[str]:
    return [line for line in cluster.log_since(offset).splitlines() if "telemetry:" in line]


def answer(latest: str = EXTENSION_VERSION) -> dict[str, Any]:
    return {"latest_version": latest, "up_to_date": latest == EXTENSION_VERSION}


def in_thread(cluster: Cluster, dbname: str, sql: str) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        try:
            with cluster.connect(dbname) as conn:
                result["pid"] = conn.info.backend_pid
                ready.set()
                started = time.monotonic()
                try:
                    result["value"] = scalar(conn, sql)
                except psycopg.Error as exc:
                    result["error"] = exc
                result["seconds"] = time.monotonic() - started
        except psycopg.Error as exc:
            result.setdefault("error", exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run)
    thread.start()
    ready.wait(10)
    return thread, result


@contextmanager
def tick_on_hung_peer(cluster: Cluster, conn: psycopg.Connection[Any], deadline: str) -> Iterator[dict[str, Any]]:
    """A tick running in another session, its request hanging at a peer that never answers."""
    peer = peers.RawPeer(peers.hang)
    try:
        configure(conn, peer.url, deadline=deadline)
        thread, result = in_thread(cluster, conn.info.dbname, "SELECT telemetry_tick()")
        while peer.connections == 0:
            time.sleep(0.05)
        yield result
        thread.join(30)
    finally:
        peer.close()
