"""Cost of the reporting job's tick, on a throwaway cluster.

    .venv/bin/python -m bench.job_tick

Prints, for a tick with nothing due, the median time of `SELECT telemetry_tick()` and
its ratio to a floor query run in the same connection (`SELECT 1`, the round
trip every call pays); target <= 5 ms.  Then the wall time of a tick against a
hung endpoint at the default 10 s deadline; target <= deadline + 1 s.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tests import peers
from tests.cluster import Cluster
from tests.pgtree import build_tree

RUNS = 300


def median_ms(conn, sql: str, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(sql).fetchone()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    cluster = Cluster(build_tree(root), name="bench").start()
    peer = peers.RawPeer(peers.hang)
    try:
        with cluster.database("bench") as conn:
            conn.execute("SELECT telemetry_tick()")  # load the package once, as any session's first call does
            outcome = conn.execute("SELECT telemetry_tick()").fetchone()[0]
            assert outcome["outcome"] == "not_due", outcome
            floor = median_ms(conn, "SELECT 1")
            tick = median_ms(conn, "SELECT telemetry_tick()")
            print(
                f"tick, nothing due   median {tick:6.2f} ms   floor (SELECT 1) {floor:5.2f} ms   "
                f"ratio {tick / floor:5.1f}x   target <= 5 ms: {'met' if tick <= 5 else 'MISSED'}"
            )
            conn.execute("SELECT telemetry_set_option('endpoint', %s)", [peer.url])
            conn.execute("SELECT telemetry_set_option('grace', '0')")
            conn.execute("SELECT telemetry_set_option('jitter', '0')")
            walls = []
            for _ in range(3):
                conn.execute("UPDATE _telemetry.schedule SET next_due = now() - interval '1 second'")
                started = time.perf_counter()
                outcome = conn.execute("SELECT telemetry_tick()").fetchone()[0]
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
