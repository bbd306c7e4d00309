"""The vendor side for tests: reports stored on chosen days, the roll-up, the service on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
import requests

from telemetry_collector.fleet import rollup
from telemetry_collector.fleet.app import make_app
from telemetry_collector.fleet.config import FleetSettings
from telemetry_collector.listener import ConnectionLimits, Edge, start_site
from tests.collector.helpers import LoopThread, make_report


def today(conn: psycopg.Connection[Any]) -> dt.date:
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    day: dt.date = row[0]
    return day


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


def known_fleet(conn: psycopg.Connection[Any]) -> tuple[dt.date, dict[str, str]]:
    """Six databases over 40 days, and two releases; returns today and the db_uuids."""
    t = today(conn)

    def day(n: int) -> dt.datetime:
        return at(t - dt.timedelta(days=n))

    conn.execute(
        "INSERT INTO collector.releases (version, added_at) VALUES ('0.9.0', %s), ('0.10.0', %s)",
        (day(40), day(10)),
    )
    ids = {name: str(uuid.uuid4()) for name in "abcdeg"}
    dump = str(uuid.uuid4())
    # a: 0.9.0 20 days ago; upgraded yesterday (the day's later report counts).
    store(conn, day(20), db_uuid=ids["a"], exported_db_uuid=dump, extension_version="0.9.0")
    store(conn, day(1) - dt.timedelta(hours=3), db_uuid=ids["a"], exported_db_uuid=dump, extension_version="0.9.0")
    store(conn, day(1), db_uuid=ids["a"], exported_db_uuid=dump, extension_version="0.10.0", postgresql_version="15.21")
    store(
        conn,
        day(3),
        db_uuid=ids["b"],
        extension_version="0.10.0",
        postgresql_version="16.4",
        install_method="deb",
        data_volume=5 * 10**9,
        timescaledb_version="2.17.2",
        num_hypertables=3,
        related_extensions={"pg_cron": True, "timescaledb": True, "postgis": False},
    )
    store(
        conn,
        day(10),
        db_uuid=ids["c"],
        extension_version="0.9.0",
        os_name="FreeBSD",
        extensions={"versions": {"postgis": "3.4.2", "plpgsql": "1.0"}, "num_other": 2},
    )
    store(conn, day(40), db_uuid=ids["d"], extension_version="0.9.0")  # quiet since
    store(conn, at(t, 1), db_uuid=ids["e"], exported_db_uuid=dump, extension_version="0.10.0")  # a's dump
    store(conn, day(2), db_uuid=ids["g"], extension_version="0.2.0", postgresql_version="17.5")
    store(conn, at(t, 2), db_uuid=ids["g"], extension_version="0.2.0", postgresql_version="17.5")
    return t, ids


@dataclass
class FleetService:
    """serve-fleet's application in a thread of this process, on 127.0.0.1 and a free port."""

    settings: FleetSettings
    url: str = ""
    _site: Edge | None = None
    _loop_thread: LoopThread = field(default_factory=lambda: LoopThread("vendor service"))

    def start(self) -> FleetService:
        async def setup() -> None:
            limits = ConnectionLimits(self.settings.max_connections, 0, self.settings.tls_handshake_timeout)
            self._site = await start_site(make_app(self.settings), "127.0.0.1", 0, limits, self.settings.header_timeout)
            self.url = self._site.url

        self._loop_thread.start(setup)
        return self

    def stop(self) -> None:
        self._loop_thread.stop(self._site.stop if self._site is not None else None)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=30, **kwargs)
