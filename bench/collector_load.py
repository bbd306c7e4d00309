"""Load benchmark of the collector: loopback HTTP in, PostgreSQL storage on this machine.

    make all && .venv/bin/python bench/collector_load.py [--duration 15] [--concurrency 32]

Starts a throwaway PostgreSQL 15 cluster (tests/pgtree + tests/cluster) and the
collector (`python -m telemetry_collector serve`, its own process), posts
realistic reports from many distinct db_uuids with an aiohttp client for a
bounded time, and prints sustained reports/s and latency percentiles.
Everything it started is stopped and removed when it ends, also on error or ^C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from port_for import get_port

REPO = Path(__file__).resolve().parent.parent

EXTENSION_VERSIONS = [("0.1.0", 30), ("0.2.0", 50), ("0.2.1", 15), ("0.3.0rc1", 5)]
PG_VERSIONS = [("15.20", 40), ("15.19", 10), ("16.9", 30), ("17.5", 20)]
OS_NAMES = [("Linux", 93), ("FreeBSD", 3), ("Darwin", 3), ("Windows", 1)]


def pick(choices: list[tuple[str, int]], rng: random.Random) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


class Fleet:
    """`size` databases, each with a stable identity and versions; about 1% restored from another's dump."""

    def __init__(self, size: int, seed: int = 5) -> None:
        rng = random.Random(seed)
        self.reports: list[dict[str, Any]] = []
        for _ in range(size):
            db_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            exported = (
                self.reports[rng.randrange(len(self.reports))]["exported_db_uuid"]
                if self.reports and rng.random() < 0.01
                else str(uuid.UUID(int=rng.getrandbits(128), version=4))
            )
            extensions = ["timescaledb", "postgis", "pg_stat_statements", "pg_cron", "vector", "promscale"]
            self.reports.append(
                {
                    "report_format_version": 1,
                    "db_uuid": db_uuid,
                    "exported_db_uuid": exported,
                    "installed_time": f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}T10:00:00+00:00",
                    "install_method": rng.choice(["source", "deb", "rpm", "docker"]),
                    "os_name": pick(OS_NAMES, rng),
                    "os_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1",
                    "os_release": "6.1.0-28-amd64",
                    "postgresql_version": pick(PG_VERSIONS, rng),
                    "extension_version": pick(EXTENSION_VERSIONS, rng),
                    "timescaledb_version": None,
                    "build_os_name": "Linux",
                    "build_os_version": "6.1.0-28-amd64",
                    "data_volume": int(rng.lognormvariate(20, 2)),
                    "num_hypertables": 0,
                    "related_extensions": {name: rng.random() < 0.3 for name in extensions},
                    "metrics_level": "basic",
                    "metrics_level_source": "default",
                }
            )


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def load(url: str, fleet: Fleet, duration: float, warmup: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int | str] = Counter()
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + duration
    rng = random.Random(7)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"User-Agent": "telemetry-extension/bench"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while (now := time.perf_counter()) < deadline:
            report = fleet.reports[rng.randrange(len(fleet.reports))]
            try:
                async with session.post(url, json=report, headers=headers) as response:
                    await response.read()
                    status: int | str = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                status = type(exc).__name__
            done = time.perf_counter()
            if now >= measure_from:
                statuses[status] += 1
                if status == 200:
                    latencies.append(done - now)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - measure_from
    latencies.sort()
    return {"elapsed": elapsed, "latencies": latencies, "statuses": statuses}


async def burst(url: str, fleet: Fleet, count: int, concurrency: int) -> dict[str, Any]:
    """`count` reports from distinct databases at once, as a pg_cron tick fires across a fleet."""
    latencies: list[float] = []
    statuses: Counter[int | str] = Counter()
    todo = iter(fleet.reports[-count:])  # databases the steady phase hardly touched
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)

    async def worker(session: aiohttp.ClientSession) -> None:
        for report in todo:
            sent = time.perf_counter()
            try:
                async with session.post(url, json=report) as response:
                    await response.read()
                    status: int | str = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                status = type(exc).__name__
            statuses[status] += 1
            latencies.append(time.perf_counter() - sent)

    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {"elapsed": elapsed, "latencies": latencies, "statuses": statuses}


def latency_line(lat: list[float]) -> str:
    return (
        f"p50 {percentile(lat, 50) * 1000:.1f} ms  p90 {percentile(lat, 90) * 1000:.1f} ms  "
        f"p99 {percentile(lat, 99) * 1000:.1f} ms  max {(lat[-1] if lat else float('nan')) * 1000:.1f} ms"
    )


def wait_healthy(url: str, server: subprocess.Popen[str], seconds: float = 60) -> None:
    import urllib.error
    import urllib.request

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if server.poll() is not None:
            raise RuntimeError(f"collector exited: {server.communicate()[0]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise RuntimeError("collector did not become healthy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds (15)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (2)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (32)")
    parser.add_argument("--databases", type=int, default=200_000, help="distinct db_uuids (200000)")
    parser.add_argument("--pool-max-size", type=int, default=8, help="collector's PostgreSQL connections (8)")
    parser.add_argument(
        "--burst",
        type=int,
        default=10_417,
        help="then this many reports at once, one pg_cron tick of a million-database fleet (10417; 0: none)",
    )
    parser.add_argument("--burst-concurrency", type=int, default=500, help="connections for the burst (500)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))  # the tests' PostgreSQL tree and cluster
    from tests.cluster import Cluster
    from tests.pgtree import build_tree

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "python"), str(REPO)]))
    root = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    cluster: Cluster | None = None
    server: subprocess.Popen[str] | None = None
    try:
        print(f"building a PostgreSQL tree and fleet of {args.databases} databases ...", flush=True)
        fleet = Fleet(args.databases)
        cluster = Cluster(build_tree(root), name="bench").start()
        with cluster.connect() as admin:
            admin.execute("CREATE DATABASE collector")
        dsn = f"host={cluster.socketdir} port={cluster.port} user={cluster.user} dbname=collector"
        cli = [sys.executable, "-m", "telemetry_collector"]
        subprocess.run([*cli, "migrate", "--dsn", dsn], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*cli, "release", "add", "0.2.1", "--dsn", dsn], env=env, check=True, stdout=subprocess.DEVNULL)

        port = get_port(None)
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                *cli,
                "serve",
                "--dsn",
                dsn,
                "--port",
                str(port),
                "--no-access-log",
                "--pool-min-size",
                str(args.pool_max_size),
                "--pool-max-size",
                str(args.pool_max_size),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_healthy(url, server)
        print(
            f"posting for {args.warmup:g}+{args.duration:g} s, {args.concurrency} in flight, "
            f"collector pool {args.pool_max_size}, {os.cpu_count()} cores shared by all ...",
            flush=True,
        )
        result = asyncio.run(load(f"{url}/v1/report", fleet, args.duration, args.warmup, args.concurrency))
        spike = None
        if args.burst:
            print(f"burst: {args.burst} reports at once over {args.burst_concurrency} connections ...", flush=True)
            spike = asyncio.run(burst(f"{url}/v1/report", fleet, args.burst, args.burst_concurrency))

        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                """SELECT count(*), count(DISTINCT db_uuid),
                          (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
                            WHERE inhparent = 'collector.reports'::regclass)
                     FROM collector.reports"""
            ).fetchone()
            assert row is not None
            rows, distinct, size = row
        fleet_ms = _time_fleet(url) * 1000

        lat = result["latencies"]
        ok = result["statuses"].get(200, 0)
        print()
        print(f"measured           {result['elapsed']:.1f} s")
        print(f"accepted (200)     {ok} reports, {ok / result['elapsed']:.0f} reports/s sustained")
        other = {k: v for k, v in result["statuses"].items() if k != 200}
        print(f"other answers      {other or 'none'}")
        mean = statistics.fmean(lat) * 1000 if lat else float("nan")
        print(f"latency            {latency_line(lat)}  mean {mean:.1f} ms")
        if spike is not None:
            spike_ok = spike["statuses"].get(200, 0)
            print(
                f"burst              {args.burst} reports answered in {spike['elapsed']:.2f} s "
                f"({spike_ok / spike['elapsed']:.0f} accepted/s), answers {dict(spike['statuses'])}"
            )
            print(f"burst latency      {latency_line(spike['latencies'])}")
        print(f"stored             {rows} rows (warm-up and burst included), {distinct} distinct db_uuids")
        print(f"storage            {size / max(rows, 1):.0f} bytes per report, heap+indexes+TOAST")
        print(f"GET /v1/fleet      {fleet_ms:.0f} ms over {rows} rows")
        return 0
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _time_fleet(url: str) -> float:
    import urllib.request

    start = time.perf_counter()
    with urllib.request.urlopen(f"{url}/v1/fleet", timeout=120) as response:
        response.read()
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
