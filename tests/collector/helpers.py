"""Running the collector for tests: its database, its CLI, its server on loopback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from telemetry_collector.config import Settings
from telemetry_collector.geo import CountryLookup
from telemetry_collector.listener import Edge, Endpoint, start_edge
from tests.cluster import Cluster
from tests.helpers import EXTENSION_VERSION

REPO = Path(__file__).resolve().parents[2]
PYTHON_DIR = REPO / "python"


def dsn_for(cluster: Cluster, dbname: str) -> str:
    return f"host={cluster.socketdir} port={cluster.port} user={cluster.user} dbname={dbname}"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    # The packages from the source tree, and the repository for the test doubles (tests.collector.geo_double).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PYTHON_DIR), str(REPO), env.get("PYTHONPATH")]))
    return env


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m telemetry_collector ARGS` in a child process, as an operator runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "telemetry_collector", *args],
        check=False,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_report(**overrides: Any) -> dict[str, Any]:
    """A report as the extension's get_report() makes it."""
    report: dict[str, Any] = {
        "report_format_version": 1,
        "db_uuid": str(uuid.uuid4()),
        "exported_db_uuid": str(uuid.uuid4()),
        "installed_time": "2026-11-21T12:14:31.001229+00:00",
        "install_method": "source",
        "os_name": "Linux",
        "os_version": "#1 SMP PREEMPT_DYNAMIC 0",
        "os_release": "6.1.0-28-amd64",
        "postgresql_version": "15.20",
        "extension_version": EXTENSION_VERSION,
        "timescaledb_version": None,
        "build_os_name": "Linux",
        "build_os_version": "6.1.0-28-amd64",
        "data_volume": 7789927,
        "num_hypertables": 0,
        "related_extensions": {"pg_cron": True, "postgis": False, "timescaledb": False},
        "metrics_level": "basic",
        "metrics_level_source": "default",
    }
    report.update(overrides)
    return report


class LoopThread:
    """An asyncio event loop running forever in a daemon thread of this process, for a service under test."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None

    def start(self, setup: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Runs `setup()` on the loop, then the loop until stop(); raises if setup fails or hangs."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(setup())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(60) or failure:
            raise RuntimeError(f"{self.name} did not start: {failure}")

    def stop(self, cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Runs `cleanup()` on the loop (if given), then stops and closes the loop; once only."""
        if self._thread is None:
            return
        if cleanup is not None:
            asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()
        self._thread = None


@dataclass
class Collector:
    """The service, in a thread of this process, on 127.0.0.1 and a free port."""

    settings: Settings
    geo: CountryLookup | None = None
    url: str = ""
    _edge: Edge | None = None
    _loop_thread: LoopThread = field(default_factory=lambda: LoopThread("collector"))

    def start(self) -> Collector:
        async def setup() -> None:
            self._edge = await start_edge(self.settings, self.geo, Endpoint("127.0.0.1", 0))
            self.url = self._edge.url

        self._loop_thread.start(setup)
        return self

    def stop(self) -> None:
        self._loop_thread.stop(self._edge.stop if self._edge is not None else None)

    def post(self, body: Any = None, *, data: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
        """POST /v1/report: `body` as JSON, or raw `data`."""
        if body is not None:
            return requests.post(f"{self.url}/v1/report", json=body, headers=headers, timeout=30)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return requests.post(f"{self.url}/v1/report", data=data, headers=hdrs, timeout=30)

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=30)
