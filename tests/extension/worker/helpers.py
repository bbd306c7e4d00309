"""What the background worker's tests share: a cluster where only the preload calls the tick, and waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tests.cluster import Cluster
from tests.extension.job.helpers import configure
from tests.pgtree import PgTree

T = TypeVar("T")

# The README's install: the library preloaded, nothing else.  Rounds every second.
WORKER_CONF = {
    "shared_preload_libraries": "'telemetry'",
    "telemetry.tick_interval": "'1s'",
}


def wait_for(what: Callable[[], T], description: str, seconds: float = 60.0) -> T:
    """`what()` once it is truthy; polled, with a generous bound."""
    deadline = time.monotonic() + seconds
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {description}")
        time.sleep(0.1)


@contextmanager
def worker_cluster(
    tree: PgTree, conf: dict[str, str | None] | None = None, env: dict[str, str] | None = None, name: str = "worker"
) -> Iterator[Cluster]:
    with Cluster(tree, name=name, conf={**WORKER_CONF, **(conf or {})}, env=env) as cluster:
        yield cluster


def create_database(cluster: Cluster, name: str, endpoint: str, **options: str) -> None:
    """A database with the extension, its first report due at once, sent to `endpoint`."""
    cluster.create_database(name, extension=True)
    with cluster.connect(name) as conn:
        configure(conn, endpoint, **options)


def sent_attempts(cluster: Cluster, dbname: str) -> list[tuple[Any, ...]]:
    with cluster.connect(dbname) as conn:
        return conn.execute("SELECT trigger, outcome FROM _telemetry.attempts ORDER BY id").fetchall()


def workers(cluster: Cluster) -> list[tuple[str, str | None]]:
    """The telemetry processes running now: (backend_type, datname)."""
    with cluster.connect() as conn:
        return conn.execute(
            "SELECT backend_type, datname FROM pg_stat_activity WHERE backend_type LIKE 'telemetry %' ORDER BY 1"
        ).fetchall()
