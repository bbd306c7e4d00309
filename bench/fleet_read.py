"""Fleet reads from roll-ups at fleet scale, and what the roll-up costs.

    make all && .venv/bin/python -m bench.fleet_read [--reports 1000000] [--days 30]

Starts a throwaway PostgreSQL 15 cluster (tests/pgtree + tests/cluster), loads
a synthetic fleet with COPY (reports / days databases, each reporting once a
day for `days` days, upgrading along the way), then prints:

- the roll-up's time for everything at once and for one more day afterwards
  (the incremental run a timer makes), as seconds per million reports;
- the fleet read (telemetry_collector.fleet.views, 90 days) against two floors
  measured in the same run on the same connection: `SELECT 1` and a plain read
  of the whole rollup_daily table; and GET /v1/fleet against GET /healthz
  through serve-fleet, both over loopback HTTP;
- for scale, one count(DISTINCT db_uuid) over the last 30 days of raw reports,
  which is what a fleet view costs without roll-ups.
Everything it started is stopped and removed when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "python"), str(REPO)]

from bench import throwaway  # noqa: E402
from bench.reports import CONSTANT_FIELDS, RELATED_EXTENSIONS  # noqa: E402
from telemetry_collector import storage  # noqa: E402
from telemetry_collector.fleet import rollup, views  # noqa: E402

READS = 200
COLUMNS = "received_at, db_uuid, exported_db_uuid, extension_version, postgresql_version, os_name, country, report"


class Database:
    def __init__(self, rng: random.Random, days: int) -> None:
        self.db_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.exported = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.upgrades = sorted(rng.randrange(days + 20) for _ in range(2))
        self.report: dict[str, Any] = {
            **CONSTANT_FIELDS,
            "db_uuid": self.db_uuid,
            "exported_db_uuid": self.exported,
            "installed_time": "2026-01-05T10:00:00+00:00",
            "install_method": rng.choice(["source", "deb", "deb", "rpm", "docker"]),
            "os_name": rng.choices(["Linux", "FreeBSD", "Darwin"], [95, 3, 2])[0],
            "postgresql_version": rng.choice(["15.20", "15.19", "16.9", "17.5", "18.1"]),
            "data_volume": int(rng.lognormvariate(20, 2.5)),
            "related_extensions": {name: rng.random() < 0.3 for name in RELATED_EXTENSIONS},
        }

    def row(self, day: int, received_at: dt.datetime) -> tuple[Any, ...]:
        version = "0.3.0" if day >= self.upgrades[1] else "0.2.0" if day >= self.upgrades[0] else "0.1.0"
        report = {**self.report, "extension_version": version}
        return (
            received_at,
            self.db_uuid,
            self.exported,
            version,
            report["postgresql_version"],
            report["os_name"],
            None,
            json.dumps(report),
        )


def load_days(
    conn: psycopg.Connection[Any], fleet_dbs: list[Database], first: dt.date, days: range, rng: random.Random
) -> int:
    rows = 0
    with conn.cursor().copy(f"COPY collector.reports ({COLUMNS}) FROM STDIN") as copy:
        for day in days:
            midnight = dt.datetime.combine(first + dt.timedelta(days=day), dt.time(), dt.UTC)
            for db in fleet_dbs:
                copy.write_row(db.row(day, midnight + dt.timedelta(seconds=rng.randrange(86400))))
                rows += 1
    return rows


def median_ms(fn: Any, runs: int = READS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def time_reads(dsn: str) -> dict[str, float]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:

        async def timed(coro_fn: Any) -> float:
            times = []
            for _ in range(READS):
                started = time.perf_counter()
                await coro_fn()
                times.append((time.perf_counter() - started) * 1000)
            return statistics.median(times)

        async def select_1() -> None:
            await (await conn.execute("SELECT 1")).fetchall()

        async def plain_read() -> None:
            await (await conn.execute("SELECT * FROM collector.rollup_daily")).fetchall()

        async def fleet_read() -> None:
            await views.fleet(conn, 90)

        await fleet_read()  # warm
        return {"select_1": await timed(select_1), "plain": await timed(plain_read), "fleet": await timed(fleet_read)}


def http_ms(url: str) -> float:
    def get() -> None:
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()

    get()
    return median_ms(get, 100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1_000_000, help="reports to load (1000000)")
    parser.add_argument("--days", type=int, default=30, help="days they span; databases = reports / days (30)")
    args = parser.parse_args()
    with throwaway.scratch("fleet-bench-") as db:
        rolled = _load_and_roll_up(db.dsn, args.reports, args.days)
        reads = asyncio.run(time_reads(db.dsn))
        server = throwaway.start("serve-fleet", db.dsn, "--rollup-every-seconds", "0")
        try:
            health_ms = http_ms(f"{server.url}/healthz")
            fleet_http_ms = http_ms(f"{server.url}/v1/fleet?days=90")
        finally:
            throwaway.stop(server)
    total = rolled["loaded"] + rolled["one_more"]
    full, step, tables = rolled["full"], rolled["step"], rolled["tables"]
    print()
    print(
        f"stored             {total} reports, {rolled['databases']} databases, "
        f"{rolled['size'] / total:.0f} bytes per report"
    )
    print(f"roll-up tables     rollup_daily {tables[0]} rows, rollup_latest {tables[1]}, rollup_counters {tables[2]}")
    print(
        f"rollup, all        {rolled['loaded']} reports in {full.seconds:.1f} s = "
        f"{full.seconds / rolled['loaded'] * 1e6:.1f} s per million reports"
    )
    print(
        f"rollup, next day   {rolled['one_more']} reports in {step.seconds:.1f} s = "
        f"{step.seconds / rolled['one_more'] * 1e6:.1f} s per million reports"
    )
    print(f"floor SELECT 1     {reads['select_1']:.3f} ms (median of {READS})")
    print(f"floor plain read   {reads['plain']:.3f} ms: all {tables[0]} rows of rollup_daily")
    print(
        f"fleet read (90 d)  {reads['fleet']:.3f} ms = {reads['fleet'] / reads['select_1']:.1f}x SELECT 1, "
        f"{reads['fleet'] / reads['plain']:.2f}x the plain read"
    )
    print(f"GET /healthz       {health_ms:.3f} ms (HTTP + SELECT 1, median of 100)")
    print(f"GET /v1/fleet      {fleet_http_ms:.3f} ms = {fleet_http_ms / health_ms:.1f}x GET /healthz")
    print(
        f"raw reports        {rolled['raw_ms']:.0f} ms for one count(DISTINCT db_uuid) over 30 days, without roll-ups"
    )
    return 0


def _load_and_roll_up(dsn: str, reports: int, days: int) -> dict[str, Any]:
    """The synthetic fleet loaded with COPY and rolled up, all at once and then one more day."""
    rng = random.Random(9)
    databases = max(1, reports // days)
    dbs = [Database(rng, days) for _ in range(databases)]
    with psycopg.connect(dsn, autocommit=True) as conn:

        async def migrate() -> None:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
                await storage.migrate(aconn, months_ahead=1, months_back=(days // 28) + 2)

        asyncio.run(migrate())
        conn.execute(
            "INSERT INTO collector.releases (version, added_at) VALUES ('0.2.0', now() - interval "
            "'40 days'), ('0.3.0', now() - interval '10 days')"
        )
        row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
        assert row is not None
        first = row[0] - dt.timedelta(days=days)
        print(f"loading {databases * days} reports ({databases} databases x {days} days) with COPY ...", flush=True)
        started = time.perf_counter()
        loaded = load_days(conn, dbs, first, range(days), rng)
        conn.execute("ANALYZE collector.reports")
        print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
        size = conn.execute(
            """SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
                WHERE inhparent = 'collector.reports'::regclass"""
        ).fetchone()

        async def roll(until: dt.datetime) -> rollup.RollupResult:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as aconn:
                return await rollup.run(aconn, settle_seconds=0, until=until)

        day_end = dt.datetime.combine(first + dt.timedelta(days=days), dt.time(), dt.UTC)
        full = asyncio.run(roll(day_end - dt.timedelta(microseconds=1)))
        one_more = load_days(conn, dbs, first, range(days, days + 1), rng)
        step = asyncio.run(roll(day_end + dt.timedelta(days=1) - dt.timedelta(microseconds=1)))
        conn.execute("ANALYZE")
        tables = conn.execute(
            """SELECT (SELECT count(*) FROM collector.rollup_daily), (SELECT count(*) FROM collector.rollup_latest),
                      (SELECT count(*) FROM collector.rollup_counters)"""
        ).fetchone()
        assert tables is not None
        started = time.perf_counter()
        conn.execute(
            "SELECT count(DISTINCT db_uuid) FROM collector.reports WHERE received_at >= now() - interval '30 days'"
        ).fetchone()
        raw_ms = (time.perf_counter() - started) * 1000
    return {
        "databases": databases,
        "loaded": loaded,
        "one_more": one_more,
        "size": size[0] if size and size[0] else 0,
        "full": full,
        "step": step,
        "tables": tables,
        "raw_ms": raw_ms,
    }


if __name__ == "__main__":
    sys.exit(main())
