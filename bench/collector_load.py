"""Load benchmark of the collector against a floor measured in the same run.

    make all && .venv/bin/python bench/collector_load.py [--duration 15] [--concurrency 32] [--workers 2]

Starts a throwaway PostgreSQL 15 cluster (tests/pgtree + tests/cluster) and the
collector (`python -m telemetry_collector serve`, its own processes), posts
realistic reports (the shape of a real get_report(), about 2.4 KB of JSON) from
many distinct db_uuids for a bounded time, and prints sustained reports/s and
latency percentiles.  The load comes from wrk (C; `apt-get install wrk`) running
collector_load.lua over the same fleet's bodies, byte for byte what Fleet.body()
makes, so the load generator takes a small share of the two cores; `--client
aiohttp` posts them from this Python process instead.  Then, with the collector stopped,
the floor: the same reports inserted into the same table by plain single-row
INSERTs (one connection, autocommit: one commit per report, as a naive
collector would), and the collector's ratio to it.  COPY of the same rows is
printed for scale.  Everything it started is stopped and removed when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "python"), str(REPO)]  # the report's owner, the shared bench data, the tests' cluster

from bench import throwaway  # noqa: E402
from bench.reports import CONSTANT_FIELDS, RELATED_EXTENSIONS  # noqa: E402
from telemetry_extension.metrics import timescaledb  # noqa: E402

EXTENSION_VERSIONS = [("0.1.0", 30), ("0.2.0", 50), ("0.2.1", 15), ("0.3.0rc1", 5)]
PG_VERSIONS = [("15.20", 40), ("15.19", 10), ("16.9", 30), ("17.5", 20)]
OS_NAMES = [("Linux", 93), ("FreeBSD", 3), ("Darwin", 3), ("Windows", 1)]


def pick(choices: list[tuple[str, int]], rng: random.Random) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


class Fleet:
    """`size` databases, each with a stable identity and versions; about 1% restored from another's dump.

    Database i sends template i % len(templates) (a full report, ~2.4 KB of JSON) with its own
    db_uuid and exported_db_uuid.  `templates` distinct metric sets keep the memory small
    enough for wrk's script to hold the whole fleet, and every body differs from the last.
    """

    DB_MARK = "@DB_UUID@"
    EXPORTED_MARK = "@EXPORTED_DB_UUID@"

    def __init__(self, size: int, templates: int = 1000, seed: int = 5) -> None:
        rng = random.Random(seed)
        self.db_uuids: list[str] = []
        self.exported: list[str] = []
        for _ in range(size):
            self.db_uuids.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            self.exported.append(
                self.exported[rng.randrange(len(self.exported))]
                if self.exported and rng.random() < 0.01
                else str(uuid.UUID(int=rng.getrandbits(128), version=4))
            )
        self.templates = [_template(rng) for _ in range(min(templates, size))]
        # As the extension sends them (compact JSON), cut around the two ids once here so the
        # load generator spends its CPU on HTTP.
        self._parts: list[tuple[str, str, str]] = []
        for template in self.templates:
            text = json.dumps(
                {**template, "db_uuid": self.DB_MARK, "exported_db_uuid": self.EXPORTED_MARK}, separators=(",", ":")
            )
            head, rest = text.split(self.DB_MARK)
            middle, tail = rest.split(self.EXPORTED_MARK)
            self._parts.append((head, middle, tail))
        self.mean_bytes = statistics.fmean(len(self.body(i)) for i in range(len(self.templates)))

    def __len__(self) -> int:
        return len(self.db_uuids)

    def report(self, i: int) -> dict[str, Any]:
        template = self.templates[i % len(self.templates)]
        return {**template, "db_uuid": self.db_uuids[i], "exported_db_uuid": self.exported[i]}

    def body(self, i: int) -> bytes:
        head, middle, tail = self._parts[i % len(self._parts)]
        return f"{head}{self.db_uuids[i]}{middle}{self.exported[i]}{tail}".encode()

    def write_wrk_data(self, path: Path) -> None:
        """The fleet for collector_load.lua (its header says the format)."""
        with path.open("w", encoding="utf-8") as out:
            out.write(f"{len(self.templates)} {len(self)}\n")
            for template in self.templates:
                out.write(
                    json.dumps(
                        {**template, "db_uuid": self.DB_MARK, "exported_db_uuid": self.EXPORTED_MARK},
                        separators=(",", ":"),
                    )
                    + "\n"
                )
            for db_uuid, exported in zip(self.db_uuids, self.exported, strict=True):
                out.write(f"{db_uuid} {exported}\n")


def _template(rng: random.Random) -> dict[str, Any]:
    tables = rng.randint(1, 3000)
    return {
        **CONSTANT_FIELDS,
        "db_uuid": "",
        "exported_db_uuid": "",
        "installed_time": f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}T10:00:00+00:00",
        "install_method": rng.choice(["source", "deb", "rpm", "docker"]),
        "os_name": pick(OS_NAMES, rng),
        "postgresql_version": pick(PG_VERSIONS, rng),
        "extension_version": pick(EXTENSION_VERSIONS, rng),
        "data_volume": int(rng.lognormvariate(20, 2)),
        "related_extensions": {name: rng.random() < 0.3 for name in RELATED_EXTENSIONS},
        **_deeper_metrics(rng, tables),
    }


def _storage(rng: random.Random, relations: int) -> dict[str, int]:
    return {
        "num_relations": relations,
        "num_reltuples": rng.randint(0, 10**9),
        "heap_size": rng.randint(0, 10**11),
        "toast_size": rng.randint(0, 10**9),
        "indexes_size": rng.randint(0, 10**10),
    }


def _deeper_metrics(rng: random.Random, tables: int) -> dict[str, Any]:
    """The metrics a report carries beyond the protocol's required keys, with plausible values."""
    return {
        "relations": {
            "tables": _storage(rng, tables),
            "partitioned_tables": {**_storage(rng, rng.randint(0, 20)), "num_child_tables": rng.randint(0, 500)},
            "materialized_views": _storage(rng, rng.randint(0, 10)),
            "views": {"num_relations": rng.randint(0, 200)},
            "foreign_tables": {"num_relations": rng.randint(0, 5)},
        },
        "access_methods": {
            am: {"num_relations": rng.randint(1, 3000), "pages": rng.randint(1, 10**7)}
            for am in ("heap", "btree", "gin", "gist", "brin")
        },
        "timescaledb": {  # as a database without TimescaleDB reports it
            "hypertables": dict.fromkeys(timescaledb.HYPERTABLE_KEYS, 0),
            "compression": dict.fromkeys(timescaledb.COMPRESSION_KEYS, 0),
            "continuous_aggregates": dict.fromkeys(timescaledb.CAGG_KEYS, 0),
            "policies": dict.fromkeys(timescaledb.POLICY_KEYS, 0),
        },
        "replication": {"is_standby": rng.random() < 0.2, "num_wal_senders": rng.randint(0, 3)},
        "num_databases": rng.randint(1, 40),
        "uptime_days": rng.randint(0, 400),
        "server_features": {
            "ssl": True,
            "wal_level_logical": False,
            "archive_mode": True,
            "pg_stat_statements_loaded": True,
            "data_checksums": False,
        },
        "extensions": {
            "versions": {
                "plpgsql": "1.0",
                "pg_stat_statements": "1.10",
                "pg_cron": "1.6",
                "postgis": "3.4.2",
                "telemetry": "0.1.0",
            },
            "num_other": rng.randint(0, 5),
        },
        "vendor_metrics": {},
    }


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _family(root: int) -> list[int]:
    """`root` and its children (the collector's workers; the postmaster's backends)."""
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == root:
                pids.append(int(entry.name))
    return pids


def cpu_of(roots: dict[str, int]) -> dict[str, dict[int, float]]:
    return {name: {pid: _cpu_seconds(pid) for pid in _family(root)} for name, root in roots.items()}


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> int | str:
    """One report posted and its answer read: the HTTP status, or the client error's name."""
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        return type(exc).__name__


async def load_aiohttp(url: str, fleet: Fleet, duration: float, warmup: float, concurrency: int) -> dict[str, Any]:
    """The steady load from this process (Python): costs about as much CPU per report as the collector."""
    latencies: list[float] = []
    statuses: Counter[int | str] = Counter()
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + duration
    rng = random.Random(7)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"User-Agent": "telemetry-extension/bench", "Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while (now := time.perf_counter()) < deadline:
            status = await post(session, url, fleet.body(rng.randrange(len(fleet))), headers)
            done = time.perf_counter()
            if now >= measure_from:
                statuses[status] += 1
                if status == 200:
                    latencies.append(done - now)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - measure_from
    latencies.sort()
    return {"elapsed": elapsed, "statuses": statuses, **latency_summary(latencies)}


def load_wrk(url: str, data: Path, seconds: float, concurrency: int) -> dict[str, Any]:
    """The steady load from wrk (C, one thread) with collector_load.lua: the fleet's bodies from `data`."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make deps), or run with --client aiohttp")
    script = Path(__file__).with_suffix(".lua")
    command = [wrk, "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "30s", "-s", str(script)]
    process = subprocess.Popen([*command, url, "--", str(data)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {output}")
    summary = json.loads(output.strip().splitlines()[-1])
    statuses: Counter[int | str] = Counter({int(k): v for k, v in summary["statuses"].items()})
    errors = {k: v for k, v in summary["errors"].items() if v}
    statuses.update(errors)
    latency = summary["latency_us"]
    return {
        "elapsed": summary["duration_us"] / 1e6,
        "statuses": statuses,
        "client_cpu": usage.ru_utime + usage.ru_stime,
        **{key: latency[key] / 1e6 for key in ("p50", "p90", "p99", "max", "mean")},
    }


def latency_summary(latencies: list[float]) -> dict[str, float]:
    """Percentiles of sorted latencies (s)."""
    return {
        "p50": percentile(latencies, 50),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else float("nan"),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
    }


async def burst(url: str, fleet: Fleet, count: int, concurrency: int) -> dict[str, Any]:
    """`count` reports from distinct databases at once, as a pg_cron tick fires across a fleet."""
    latencies: list[float] = []
    statuses: Counter[int | str] = Counter()
    bodies = (fleet.body(i) for i in range(len(fleet) - count, len(fleet)))  # databases hardly touched before
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)

    async def worker(session: aiohttp.ClientSession) -> None:
        for body in bodies:
            sent = time.perf_counter()
            statuses[await post(session, url, body, headers)] += 1
            latencies.append(time.perf_counter() - sent)

    start = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {"elapsed": elapsed, "statuses": statuses, **latency_summary(latencies)}


def latency_line(result: dict[str, Any]) -> str:
    return (
        f"p50 {result['p50'] * 1000:.1f} ms  p90 {result['p90'] * 1000:.1f} ms  "
        f"p99 {result['p99'] * 1000:.1f} ms  max {result['max'] * 1000:.1f} ms  mean {result['mean'] * 1000:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds (15)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (2)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (32)")
    parser.add_argument("--databases", type=int, default=200_000, help="distinct db_uuids (200000)")
    parser.add_argument("--pool-max-size", type=int, default=4, help="PostgreSQL connections per worker (4)")
    parser.add_argument("--workers", type=int, default=2, help="collector processes on the port (2)")
    parser.add_argument("--writers", type=int, default=2, help="batched writes in flight per worker (2)")
    parser.add_argument("--floor-seconds", type=float, default=5.0, help="seconds of single-row INSERTs (5)")
    parser.add_argument(
        "--burst",
        type=int,
        default=10_417,
        help="then this many reports at once, one pg_cron tick of a million-database fleet (10417; 0: none)",
    )
    parser.add_argument("--burst-concurrency", type=int, default=500, help="connections for the burst (500)")
    parser.add_argument(
        "--client",
        choices=("wrk", "aiohttp"),
        default="wrk",
        help="steady load from wrk (C, cheap) or from this Python process (aiohttp, as costly as the collector)",
    )
    parser.add_argument("--serve-args", default="", help="more options for `serve`, e.g. '--event-loop asyncio'")
    args = parser.parse_args()
    print(f"building a PostgreSQL tree and fleet of {args.databases} databases ...", flush=True)
    server: throwaway.Server | None = None
    with throwaway.scratch("collector-bench-") as db:
        try:
            fleet = Fleet(args.databases)
            throwaway.run("migrate", "--dsn", db.dsn)
            throwaway.run("release", "add", "0.2.1", "--dsn", db.dsn)
            server = throwaway.start(
                "serve",
                db.dsn,
                *("--workers", str(args.workers), "--writers", str(args.writers)),
                *("--new-databases-per-address", str(args.databases)),
                *("--pool-min-size", str(args.pool_max_size), "--pool-max-size", str(args.pool_max_size)),
                *shlex.split(args.serve_args),
            )
            result = _measure(args, db, fleet, server)
        finally:
            if server is not None:
                throwaway.stop(server)
        _print(args, fleet, result, _floor(db.dsn, fleet, args.floor_seconds))
    return 0


def _measure(args: argparse.Namespace, db: throwaway.Scratch, fleet: Fleet, server: throwaway.Server) -> dict[str, Any]:
    """The steady HTTP load and the burst against the running collector, which is stopped after."""
    load_before = os.getloadavg()
    print(
        f"posting with {args.client} for {args.warmup:g}+{args.duration:g} s, {args.concurrency} in flight, "
        f"{args.workers} "
        f"collector processes with {args.pool_max_size} connections each, {os.cpu_count()} cores shared by all; "
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} ...",
        flush=True,
    )
    postmaster = int((db.cluster.datadir / "postmaster.pid").read_text().split()[0])
    roots = {"collector": server.process.pid, "PostgreSQL": postmaster}
    report_url = f"{server.url}/v1/report"
    if args.client == "wrk":
        data = db.root / "fleet.txt"
        fleet.write_wrk_data(data)
        if args.warmup > 0:
            load_wrk(report_url, data, args.warmup, args.concurrency)
        cpu_before = cpu_of(roots)
        result = load_wrk(report_url, data, args.duration, args.concurrency)
        cpu_after = cpu_of(roots)
        measured_share = 1.0  # CPU sampled around the measured run only
    else:
        cpu_before, self_before = cpu_of(roots), time.process_time()
        result = asyncio.run(load_aiohttp(report_url, fleet, args.duration, args.warmup, args.concurrency))
        cpu_after = cpu_of(roots)
        result["client_cpu"] = time.process_time() - self_before
        measured_share = args.duration / (args.duration + args.warmup)  # CPU includes the warm-up
    spike = None
    if args.burst:
        print(f"burst: {args.burst} reports at once over {args.burst_concurrency} connections ...", flush=True)
        spike = asyncio.run(burst(report_url, fleet, args.burst, args.burst_concurrency))
    throwaway.stop(server)
    handled = sum(result["statuses"].values()) / measured_share
    cpu_ms = {
        name: sum(after - cpu_before[name].get(pid, 0.0) for pid, after in cpu_after[name].items()) / handled * 1000
        for name in roots
    }
    cpu_ms[f"load generator ({args.client})"] = result["client_cpu"] / handled * 1000
    return {**result, "cpu_ms": cpu_ms, "spike": spike, "load": (load_before, os.getloadavg())}


def _floor(dsn: str, fleet: Fleet, seconds: float) -> dict[str, Any]:
    """What the collector stored, and the floor (single-row INSERTs) and COPY on the same table."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """SELECT count(*), count(DISTINCT db_uuid),
                      (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
                        WHERE inhparent = 'collector.reports'::regclass)
                 FROM collector.reports"""
        ).fetchone()
        assert row is not None
    print(f"floor: single-row INSERTs of the same reports for {seconds:g} s ...", flush=True)
    return {
        "rows": row[0],
        "distinct": row[1],
        "size": row[2],
        "floor": insert_floor(dsn, fleet, seconds),
        "copy": copy_reference(dsn, fleet),
    }


def _print(args: argparse.Namespace, fleet: Fleet, result: dict[str, Any], floor: dict[str, Any]) -> None:
    ok = result["statuses"].get(200, 0)
    rate = ok / result["elapsed"]
    print()
    print(f"measured           {result['elapsed']:.1f} s")
    print(f"accepted (200)     {ok} reports, {rate:.0f} reports/s sustained")
    other = {k: v for k, v in result["statuses"].items() if k != 200}
    print(f"other answers      {other or 'none'}")
    print(f"latency            {latency_line(result)}")
    print("CPU per report     " + ", ".join(f"{name} {ms:.3f} ms" for name, ms in result["cpu_ms"].items()))
    if (spike := result["spike"]) is not None:
        spike_ok = spike["statuses"].get(200, 0)
        print(
            f"burst              {args.burst} reports answered in {spike['elapsed']:.2f} s "
            f"({spike_ok / spike['elapsed']:.0f} accepted/s), answers {dict(spike['statuses'])}"
        )
        print(f"burst latency      {latency_line(spike)}")
    rows = floor["rows"]
    print(f"stored             {rows} rows (warm-up and burst included), {floor['distinct']} distinct db_uuids")
    print(f"report size        {fleet.mean_bytes:.0f} bytes of JSON on average")
    print(f"storage            {floor['size'] / max(rows, 1):.0f} bytes per report, heap+indexes+TOAST")
    print(f"floor              {floor['floor']:.0f} reports/s: single-row INSERT, 1 connection, autocommit")
    print(f"COPY (for scale)   {floor['copy']:.0f} reports/s: COPY, 1 connection, 1,000 rows per commit")
    print(f"ratio              {rate / floor['floor']:.2f}x the floor ({rate / floor['copy']:.2f}x COPY)")
    before, after = result["load"]
    print(
        f"load average       {before[0]:.2f} before, {after[0]:.2f} after the HTTP load "
        f"(1-minute; other work on the machine shows here)"
    )


_INSERT = """INSERT INTO collector.reports
                 (db_uuid, exported_db_uuid, extension_version, postgresql_version, os_name, country, report)
             VALUES (%s, %s, %s, %s, %s, NULL, %s::jsonb)"""


def _row(fleet: Fleet, i: int) -> tuple[Any, ...]:
    """Database i's report as the floor stores it: its columns and the very body the collector was sent."""
    report = fleet.report(i)
    return (
        report["db_uuid"],
        report["exported_db_uuid"],
        report["extension_version"],
        report["postgresql_version"],
        report["os_name"],
        fleet.body(i).decode(),
    )


def insert_floor(dsn: str, fleet: Fleet, seconds: float) -> float:
    """Reports/s of one single-row INSERT (and commit) per report, one connection, the same table."""
    rows = [_row(fleet, i) for i in range(max(0, len(fleet) - 50_000), len(fleet))]  # the floor pays no JSON
    with psycopg.connect(dsn, autocommit=True) as conn:
        for row in rows[:200]:  # warm: the statement is prepared after a few runs
            conn.execute(_INSERT, row)
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            conn.execute(_INSERT, rows[done % len(rows)])
            done += 1
    return done / elapsed


def copy_reference(dsn: str, fleet: Fleet, count: int = 20_000) -> float:
    rows = [_row(fleet, i) for i in range(min(count, len(fleet)))]
    columns = "db_uuid, exported_db_uuid, extension_version, postgresql_version, os_name, report"
    with psycopg.connect(dsn, autocommit=True) as conn:
        start = time.perf_counter()
        for first in range(0, len(rows), 1000):
            copy_sql = f"COPY collector.reports ({columns}) FROM STDIN"
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows[first : first + 1000]:
                    copy.write_row(row)
        return len(rows) / (time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(main())
