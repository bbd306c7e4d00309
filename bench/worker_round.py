"""Cost of the background worker: one idle round over 100 databases, and the launcher at rest.

    .venv/bin/python -m bench.worker_round

On a throwaway cluster (telemetry preloaded, autovacuum off so that no other
process comes and goes), 100 databases with the extension and nothing due:
  - one round of the launcher (a short-lived visit per database, each running
    the tick's plain-SQL check): wall time, and the CPU of the visitors (the
    postmaster's reaped children, from /proc), against a floor measured in the
    same run: a new connection running SELECT 1 to each database in turn;
  - the launcher's own CPU over an idle minute at tick_interval = 1min (one
    round in it) and at the default 15min (none).
Prints both, and their ratios.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.cluster import Cluster
from tests.helpers import one_row
from tests.pgtree import build_tree

DATABASES = 100
TICKS = os.sysconf("SC_CLK_TCK")
CONF = {"shared_preload_libraries": "'telemetry'", "autovacuum": "off", "telemetry.tick_interval": None}


def cpu_ms(pid: int, children: bool = False) -> float:
    """utime + stime of `pid` (or of its reaped children), in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11  # cutime, cstime are fields 16, 17; utime, stime 14, 15
    return (int(fields[first]) + int(fields[first + 1])) * 1000 / TICKS


def postmaster_pid(cluster: Cluster) -> int:
    return int((cluster.datadir / "postmaster.pid").read_text().split()[0])


def set_interval(conn: psycopg.Connection[Any], value: str) -> None:
    conn.execute(f"ALTER SYSTEM SET telemetry.tick_interval = '{value}'")
    conn.execute("SELECT pg_reload_conf()")


def commits(conn: psycopg.Connection[Any]) -> dict[str, int]:
    return dict(conn.execute("SELECT datname, xact_commit FROM pg_stat_database WHERE datname LIKE 'w%'").fetchall())


def one_round(cluster: Cluster, conn: psycopg.Connection[Any]) -> tuple[float, float]:
    """Wall seconds and visitors' CPU ms of one round, started by shortening the interval."""
    before = commits(conn)
    postmaster = postmaster_pid(cluster)
    cpu = cpu_ms(postmaster, children=True)
    started = time.perf_counter()
    set_interval(conn, "1s")  # the last round began more than 1 s ago: the next begins now
    reset = False
    while True:
        now = commits(conn)
        if not reset and any(now[name] > count for name, count in before.items()):
            set_interval(conn, "1h")  # read when this round ends: no other follows
            reset = True
        if all(now[name] > count for name, count in before.items()):
            break
        time.sleep(0.02)
    return time.perf_counter() - started, cpu_ms(postmaster, children=True) - cpu


def floor_round(cluster: Cluster) -> tuple[float, float]:
    postmaster = postmaster_pid(cluster)
    cpu = cpu_ms(postmaster, children=True)
    started = time.perf_counter()
    for i in range(DATABASES):
        with cluster.connect(f"w{i}") as conn:
            conn.execute("SELECT 1").fetchone()
    seconds = time.perf_counter() - started
    time.sleep(0.5)  # the last backend is reaped
    return seconds, cpu_ms(postmaster, children=True) - cpu


def launcher_minute(cluster: Cluster, conn: psycopg.Connection[Any], interval: str) -> float:
    [pid] = one_row(conn, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'telemetry launcher'")
    set_interval(conn, interval)
    time.sleep(1)
    cpu = cpu_ms(pid)
    time.sleep(60)
    return cpu_ms(pid) - cpu


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="telemetry-bench-"))
    # The interval is set with ALTER SYSTEM, which a -c option on the command line would override.
    cluster = Cluster(build_tree(root), name="bench", conf=CONF).start()
    try:
        with cluster.connect() as admin:
            set_interval(admin, "1h")
            for i in range(DATABASES):
                admin.execute(f"CREATE DATABASE w{i}")
                with cluster.connect(f"w{i}") as conn:
                    conn.execute("CREATE EXTENSION telemetry CASCADE")  # grace 24 h: nothing due
            time.sleep(2)
            one_round(cluster, admin)  # warm: catalogs cached, every database visited once
            floor_s, floor_cpu = floor_round(cluster)
            round_s, round_cpu = one_round(cluster, admin)
            print(
                f"one idle round over {DATABASES} databases: {round_s * 1000:7.0f} ms wall, "
                f"{round_cpu:6.0f} ms CPU of the visits"
            )
            print(
                f"floor, a new connection running SELECT 1 to each: {floor_s * 1000:7.0f} ms wall, "
                f"{floor_cpu:6.0f} ms CPU of the backends"
            )
            print(f"ratio: wall {round_s / floor_s:4.2f}x, CPU {round_cpu / max(floor_cpu, 1):4.2f}x the floor")
            for interval in ("1min", "15min"):
                ms = launcher_minute(cluster, admin, interval)
                print(
                    f"launcher CPU over an idle minute at tick_interval = {interval}: {ms:5.0f} ms "
                    f"({ms / 600:.3f}% of one core)"
                )
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
