"""The vendor side for tests: reports stored on chosen days, the roll-up, the service on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import psycopg
import requests
from aiohttp import web
from telemetry_collector.vendor import rollup
from telemetry_collector.vendor.app import ACCESS_LOG_FORMAT, make_app
from telemetry_collector.vendor.config import VendorSettings

from tests.collector.helpers import make_report


def today(conn: psycopg.Connection[Any]) -> dt.date:
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    return row[0]


def at(day: dt.date, hour: float = 12.0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(hours=hour)


def store(conn: psycopg.Connection[Any], received_at: dt.datetime, **fields: Any) -> dict[str, Any]:
    """A report as the ingest edge stores it, received at `received_at`."""
    report = make_report(**fields)
    conn.execute(
        """INSERT INTO collector.reports (received_at, db_uuid, exported_db_uuid, extension_version,
                                          postgresql_version, os_name, country, report)
           VALUES (%s, %s, %s, %s, %s, %s, NULL, %s::jsonb)""",
        (
            received_at,
            report["db_uuid"],
            report["exported_db_uuid"],
            report["extension_version"],
            report["postgresql_version"],
            report["os_name"],
            json.dumps(report),
        ),
    )
    return report


def roll_up(dsn: str, until: dt.datetime | None = None, rebuild: bool = False) -> rollup.RollupResult:
    async def run() -> rollup.RollupResult:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await rollup.run(conn, settle_seconds=0, rebuild=rebuild, until=until)

    return asyncio.run(run())


@dataclass
class VendorService:
    """serve-vendor's application in a thread of this process, on 127.0.0.1 and a free port."""

    settings: VendorSettings
    url: str = ""
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def start(self) -> VendorService:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def setup() -> None:
            self._runner = web.AppRunner(make_app(self.settings), access_log_format=ACCESS_LOG_FORMAT)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            host, port = self._runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(setup())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="vendor", daemon=True)
        self._thread.start()
        if not ready.wait(60) or failure:
            raise RuntimeError(f"vendor service did not start: {failure}")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
        self._thread = None

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=30, **kwargs)
