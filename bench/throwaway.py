"""What the collector's benchmarks share: a throwaway PostgreSQL 15 with a migrated-to-be `collector`
database (tests/pgtree + tests/cluster), and the collector's commands run as processes of their own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from port_for import get_port

if TYPE_CHECKING:
    from tests.cluster import Cluster

REPO = Path(__file__).resolve().parent.parent
# The collector's processes import from the checkout, never from their working directory.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "python"), str(REPO)]), PYTHONSAFEPATH="1")
COLLECTOR = [sys.executable, "-m", "telemetry_collector"]


@dataclass(frozen=True)
class Scratch:
    root: Path  # a temporary folder, removed at the end
    cluster: Cluster
    dsn: str  # its `collector` database


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Scratch]:
    """A PostgreSQL cluster with an empty `collector` database; stopped and removed afterwards."""
    from tests.cluster import Cluster
    from tests.pgtree import build_tree

    root = Path(tempfile.mkdtemp(prefix=prefix))
    cluster: Cluster | None = None
    try:
        cluster = Cluster(build_tree(root), name="bench").start()
        with cluster.connect() as admin:
            admin.execute("CREATE DATABASE collector")
        yield Scratch(
            root, cluster, f"host={cluster.socketdir} port={cluster.port} user={cluster.user} dbname=collector"
        )
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def run(*args: str) -> None:
    """A collector command to its end, quietly (migrate, release add ...)."""
    subprocess.run([*COLLECTOR, *args], env=ENV, check=True, stdout=subprocess.DEVNULL)


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str  # http://127.0.0.1:PORT


def start(command: str, dsn: str, *options: str) -> Server:
    """`command` (serve, serve-fleet) on a free loopback port, without access log; once /healthz answers."""
    port = get_port(None)
    process = subprocess.Popen(
        [*COLLECTOR, command, "--dsn", dsn, "--port", str(port), "--no-access-log", *options],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        _wait_healthy(server)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_healthy(server: Server, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if server.process.poll() is not None:
            raise RuntimeError(f"the collector exited: {server.process.communicate()[0]}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise RuntimeError(f"{server.url} did not become healthy")


def stop(server: Server) -> None:
    """SIGINT, as an operator's Ctrl-C, then SIGKILL after 30 s; nothing when it has ended."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
