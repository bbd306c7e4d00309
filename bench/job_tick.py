"""Cost of the reporting job's tick, on a throwaway cluster.

    .venv/bin/python -m bench.job_tick

Prints, for a tick with nothing due (`SELECT _telemetry.tick()`, pg_cron's
command), the median time
  - cold: a new connection per tick, as pg_cron runs it (connect, tick,
    disconnect), against a cold floor: a new connection running `SELECT 1`;
    target <= 15 ms median;
  - warm: in one connection, after a first tick;
each also as a ratio to the cold `SELECT 1` of the same run.  The same for a
tick at off.  Then the wall time of a tick against a hung endpoint at the
default 10 s deadline; target <= deadline + 1 s.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests import peers
from tests.cluster import Cluster
from tests.helpers import scalar
from tests.pgtree import build_tree

RUNS = 300
COLD_RUNS = 60
TICK = "SELECT _telemetry.tick()"


def median_ms(conn: psycopg.Connection[Any], sql: str, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(sql).fetchone()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def cold_median_ms(cluster: Cluster, dbname: str, sql: str, runs: int = COLD_RUNS) -> float:
    """A new backend per statement: connect, run, disconnect."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        with cluster.connect(dbname) as conn:
            conn.execute(sql).fetchone()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def print_tick(label: str, cluster: Cluster, dbname: str, conn: psycopg.Connection[Any], outcome: str) -> None:
    assert scalar(conn, TICK)["outcome"] == outcome
    floor = cold_median_ms(cluster, dbname, "SELECT 1")
    cold = cold_median_ms(cluster, dbname, TICK)
    warm = median_ms(conn, TICK)
    print(
        f"tick, {label:<12} cold {cold:6.2f} ms ({cold / floor:4.2f}x)   warm {warm:5.2f} ms ({warm / floor:4.2f}x)"
        f"   floor: cold SELECT 1 {floor:5.2f} ms   target cold <= 15 ms: {'met' if cold <= 15 else 'MISSED'}"
    )


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    cluster = Cluster(build_tree(root), name="bench").start()
    peer = peers.RawPeer(peers.hang)
    try:
        with cluster.database("bench") as conn:
            print_tick("nothing due", cluster, "bench", conn, "not_due")
            conn.execute("ALTER DATABASE bench SET telemetry.metrics_level = off")
            with cluster.connect("bench") as off:
                print_tick("off", cluster, "bench", off, "disabled")
            conn.execute("ALTER DATABASE bench RESET telemetry.metrics_level")
            # For comparison: the same answer from the Python tick alone, which loads Python and the package.
            python_floor = cold_median_ms(cluster, "bench", "SELECT 1", 15)
            python_cold = cold_median_ms(cluster, "bench", "SELECT _telemetry.run_tick()", 15)
            print(f"tick, Python path cold {python_cold:6.2f} ms ({python_cold / python_floor:4.1f}x), for comparison")
            conn.execute("SELECT telemetry_set_option('endpoint', %s)", [peer.url])
            conn.execute("SELECT telemetry_set_option('grace', '0')")
            conn.execute("SELECT telemetry_set_option('jitter', '0')")
            walls = []
            for _ in range(3):
                conn.execute("UPDATE _telemetry.schedule SET next_due = now() - interval '1 second'")
                started = time.perf_counter()
                outcome = scalar(conn, "SELECT telemetry_tick()")
                walls.append(time.perf_counter() - started)
                assert outcome["outcome"] == "failed", outcome
            worst = max(walls)
            print(
                f"tick, hung endpoint wall {statistics.median(walls):6.2f} s median, {worst:.2f} s worst "
                f"(deadline 10 s)   target <= 11 s: {'met' if worst <= 11 else 'MISSED'}"
            )
    finally:
        peer.close()
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
