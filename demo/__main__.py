"""`make demo`: the whole loop on a throwaway cluster, shown step by step.

Run after `make install`: it uses the system's PostgreSQL 15 with the extension
installed there, starts a cluster in a temporary directory (as `postgres` when
run as root) whose only setting is shared_preload_libraries = 'telemetry', starts
the collector on 127.0.0.1, lets telemetry's background worker send the report
(no pg_cron), and removes everything at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import requests
from port_for import get_port

from tests.cluster import Cluster
from tests.helpers import EXTENSION_VERSION, Notices, release_after, report, scalar
from tests.pgtree import REPO, system_tree

NEWER_RELEASE = release_after()

# The README's install: telemetry preloaded, nothing else.  The worker's rounds
# every 2 seconds instead of 15 minutes, so that the demo does not wait.
CONF = {
    "shared_preload_libraries": "'telemetry'",
    "telemetry.tick_interval": "'2s'",
}


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def collector_cli(*args: str, dsn: str) -> list[str]:
    return [sys.executable, "-m", "telemetry_collector", *args, "--dsn", dsn]


def postgresql_patch(cluster: Cluster) -> str:
    """The minor release after the demo server's own (it is newer, and the demo says it fixes security issues)."""
    with cluster.connect() as conn:
        num = int(scalar(conn, "SELECT current_setting('server_version_num')"))
    return f"{num // 10000}.{num % 10000 + 1}"


def release_list(patch: str) -> list[tuple[str, ...]]:
    notes = "https://www.postgresql.org/docs/release/"
    return [
        ("migrate",),
        ("release", "add", EXTENSION_VERSION),
        ("release", "add", NEWER_RELEASE),
        ("release", "add", patch, "--product", "postgresql", "--security", "--notes-url", f"{notes}{patch}/"),
    ]


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="telemetry-demo-"))
    cluster = Cluster(system_tree(root), name="demo", conf=CONF)
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    collector: subprocess.Popen[bytes] | None = None
    try:
        step(f"a throwaway cluster on port {cluster.port}: shared_preload_libraries = 'telemetry', no pg_cron")
        cluster.start()
        dsn = f"host={cluster.socketdir} port={cluster.port} user={cluster.user} dbname=collector"
        with cluster.connect() as admin:
            admin.execute("CREATE DATABASE collector")
            admin.execute("CREATE DATABASE demo")
        port = get_port(None)
        url = f"http://127.0.0.1:{port}"
        patch = postgresql_patch(cluster)
        step(f"the collector on {url}: {NEWER_RELEASE} is out, and PostgreSQL {patch} fixes security issues")
        for args in release_list(patch):
            subprocess.run(collector_cli(*args, dsn=dsn), env=env, check=True, stdout=subprocess.DEVNULL)
        collector = subprocess.Popen(
            collector_cli("serve", "--host", "127.0.0.1", "--port", str(port), "--no-access-log", dsn=dsn),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                requests.get(f"{url}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)

        with cluster.connect("demo") as conn:
            notices = Notices(conn)
            step("CREATE EXTENSION telemetry CASCADE;")
            conn.execute("CREATE EXTENSION telemetry CASCADE")
            for text in notices.of("NOTICE"):
                print("NOTICE: " + text.replace("\n", "\n        "))
            workers = conn.execute(
                "SELECT backend_type FROM pg_stat_activity WHERE backend_type LIKE 'telemetry %'"
            ).fetchall()
            print("telemetry's processes:", [kind for (kind,) in workers])
            step("SELECT get_report();  -- exactly what will be sent")
            print(json.dumps(report(conn), indent=2, sort_keys=True))

            step("for the demo: endpoint = the collector, no grace period")
            for name, value in (("endpoint", f"{url}/v1/report"), ("grace", "0"), ("jitter", "0")):
                conn.execute("SELECT telemetry_set_option(%s, %s)", [name, value])
            offset = cluster.log_offset()
            print("waiting for the background worker's next visit (telemetry.tick_interval = 2s) ...", flush=True)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if scalar(conn, "SELECT count(*) FROM _telemetry.attempts"):
                    break
                time.sleep(1)
            row = conn.execute(
                "SELECT trigger, outcome, http_status, duration_ms, latest_version FROM _telemetry.attempts"
            ).fetchone()
            step("the audit trail (_telemetry.attempts): trigger, outcome, HTTP status, ms, newest version")
            print(row)
            step("the server log")
            time.sleep(0.5)
            for line in cluster.log_since(offset).splitlines():
                if "telemetry" in line and ("WARNING" in line or "HINT" in line):
                    print(line)
            step("SELECT product, installed, newest, newest_in_series, security, end_of_life FROM telemetry_versions;")
            for row in conn.execute(
                "SELECT product, installed, newest, newest_in_series, security, end_of_life FROM telemetry_versions"
            ).fetchall():
                print(row)
            step("SELECT * FROM telemetry_status;")
            status = conn.cursor(row_factory=psycopg.rows.dict_row).execute("SELECT * FROM telemetry_status").fetchone()
            assert status is not None
            for column, value in status.items():
                print(f"{column:22} {value}")
        step("the vendor side: rollup, then serve-fleet's fleet view (/v1/fleet on its own listener)")
        time.sleep(0.5)  # the edge writes in batches
        subprocess.run(collector_cli("rollup", "--settle-seconds", "0", dsn=dsn), env=env, check=True)
        vendor_port = get_port(None)
        vendor = subprocess.Popen(
            collector_cli("serve-fleet", "--port", str(vendor_port), "--rollup-every-seconds", "0", dsn=dsn),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        fleet: dict[str, object] = {}
        try:
            for _ in range(100):
                try:
                    fleet = requests.get(f"http://127.0.0.1:{vendor_port}/v1/fleet", timeout=1).json()
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            print(json.dumps({key: fleet[key] for key in ("active", "now") if key in fleet}, indent=2)[:1500])
            advisories: Any = fleet.get("advisories", {})
            print("the fleet page's security share:", advisories.get("now"))
        finally:
            vendor.terminate()
            vendor.wait(10)

        step("ALTER SYSTEM SET telemetry.metrics_level = off; SELECT pg_reload_conf();")
        with cluster.connect() as fresh:
            fresh.execute("ALTER SYSTEM SET telemetry.metrics_level = off")
        cluster.reload()
        with cluster.connect("demo") as again:
            print("SELECT telemetry_send_report();  ->", scalar(again, "SELECT telemetry_send_report()"))
        print("\ndemo done; the throwaway cluster and collector are removed.")
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(10)
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
