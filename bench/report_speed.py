"""How much get_report() costs on large catalogs, against a floor measured in the same run.

    make all && .venv/bin/python bench/report_speed.py [--sizes 10000 30000] [--warm 15] [--cold 7]

Stands up a throwaway PostgreSQL 15 cluster (tests/pgtree + tests/cluster)
with this checkout's extension, fills one database with relations (see
bench/report_build.py: tables with an index and TOAST, partitioned tables
with partitions, views, materialized views) up to each size in turn, and
prints for each size:

- floor: one aggregate over pg_class plus pg_database_size(current_database()),
  the least any report that tells the database's size and looks at its
  catalog can cost: `SELECT (SELECT count(*), sum(relpages), sum(reltuples)
  FROM pg_class), pg_database_size(current_database())`, median of warm runs;
- warm: get_report() again in the same connection, median, and its ratio to the floor;
- cold: get_report() as the first statement of a new connection (PL/Python
  and the package loaded, caches empty), median, and its excess over the floor.

Targets: warm ≤ 1.3 × floor; cold ≤ floor + 100 ms; cost linear
in the number of relations.  Everything it started is removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report_build import catalog_rows, fill  # noqa: E402
from tests.cluster import Cluster  # noqa: E402
from tests.pgtree import build_tree  # noqa: E402

FLOOR = (
    "SELECT (SELECT row(count(*), sum(relpages), sum(reltuples)) FROM pg_catalog.pg_class),"
    " pg_catalog.pg_database_size(pg_catalog.current_database())"
)
REPORT = "SELECT get_report()"
WARM_TARGET = 1.3
COLD_TARGET_MS = 100.0


@dataclass
class Row:
    relations: int
    catalog_rows: int
    floor_ms: float
    warm_ms: float
    cold_ms: float
    cold_floor_ms: float

    @property
    def warm_ratio(self) -> float:
        return self.warm_ms / self.floor_ms

    @property
    def cold_excess_ms(self) -> float:
        return self.cold_ms - self.floor_ms


def timed(conn: psycopg.Connection[Any], query: str) -> float:
    started = time.perf_counter()
    conn.execute(query).fetchall()
    return (time.perf_counter() - started) * 1000


def median_cold(cluster: Cluster, dbname: str, query: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        with cluster.connect(dbname) as conn:
            samples.append(timed(conn, query))
    return statistics.median(samples)


def measure(cluster: Cluster, dbname: str, relations: int, warm: int, cold: int) -> Row:
    with cluster.connect(dbname) as conn:
        rows = catalog_rows(conn)
        report = conn.execute(REPORT).fetchone()
        assert report is not None and "error" not in str(report[0].get("relations")), report
        # Interleaved, so that both see the same state of the machine.
        floor_samples: list[float] = []
        warm_samples: list[float] = []
        timed(conn, FLOOR)
        timed(conn, REPORT)
        for _ in range(warm):
            floor_samples.append(timed(conn, FLOOR))
            warm_samples.append(timed(conn, REPORT))
    return Row(
        relations=relations,
        catalog_rows=rows,
        floor_ms=statistics.median(floor_samples),
        warm_ms=statistics.median(warm_samples),
        cold_ms=median_cold(cluster, dbname, REPORT, cold),
        cold_floor_ms=median_cold(cluster, dbname, FLOOR, cold),
    )


def print_table(rows: list[Row]) -> None:
    print()
    print(
        "| relations | pg_class rows | floor ms | warm ms | warm / floor | cold ms | cold − floor ms | floor, cold ms |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r.relations:,} | {r.catalog_rows:,} | {r.floor_ms:.1f} | {r.warm_ms:.1f} | {r.warm_ratio:.2f} "
            f"| {r.cold_ms:.1f} | {r.cold_excess_ms:+.1f} | {r.cold_floor_ms:.1f} |"
        )
    print()
    for r in rows:
        warm_ok = r.warm_ratio <= WARM_TARGET
        cold_ok = r.cold_excess_ms <= COLD_TARGET_MS
        print(
            f"{r.relations:,} relations: warm {'meets' if warm_ok else 'MISSES'} ≤ {WARM_TARGET} × floor; "
            f"cold {'meets' if cold_ok else 'MISSES'} ≤ floor + {COLD_TARGET_MS:.0f} ms"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        size = last.relations / first.relations
        print(
            f"linearity: {size:.1f}× the relations cost {last.warm_ms / first.warm_ms:.2f}× warm "
            f"({first.warm_ms / first.relations * 1000:.2f} → {last.warm_ms / last.relations * 1000:.2f} ms "
            f"per 1k relations); the floor grew {last.floor_ms / first.floor_ms:.2f}×"
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--warm", type=int, default=15, help="warm runs per size (median)")
    parser.add_argument("--cold", type=int, default=7, help="new connections per size (median)")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    cluster: Cluster | None = None
    try:
        print("building a private PostgreSQL tree with this checkout's extension ...", flush=True)
        cluster = Cluster(build_tree(root), name="bench").start()
        dbname = "bench"
        rows: list[Row] = []
        with cluster.database(dbname) as conn:
            held = 0
            for size in sorted(args.sizes):
                started = time.monotonic()
                held = fill(conn, size, held)
                print(
                    f"{held:,} relations ({catalog_rows(conn):,} pg_class rows) built in "
                    f"{time.monotonic() - started:.0f} s; measuring ...",
                    flush=True,
                )
                conn.execute("CHECKPOINT")
                rows.append(measure(cluster, dbname, held, args.warm, args.cold))
            print_table(rows)
    finally:
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
