"""`make demo`: a throwaway cluster on the installed extension, shown step by step.

Run after `make install`; it uses the system's PostgreSQL 15 and the extension
installed there, starts a cluster in a temporary directory (as `postgres`
when run as root) and removes it at the end.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tests.cluster import Cluster
from tests.helpers import Notices, report
from tests.pgtree import system_tree


def step(title: str) -> None:
    print(f"\n=== {title}")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="telemetry-demo-"))
    cluster = Cluster(system_tree(root), name="demo")
    try:
        step(f"throwaway cluster on port {cluster.port} (shared_preload_libraries = 'telemetry,pg_cron')")
        cluster.start()
        with cluster.database("demo", extension=False) as conn:
            notices = Notices(conn)
            step("CREATE EXTENSION telemetry CASCADE;")
            conn.execute("CREATE EXTENSION telemetry CASCADE")
            for text in notices.of("NOTICE"):
                print("NOTICE: " + text.replace("\n", "\n        "))
            step(r"\dx telemetry")
            version, comment = conn.execute(
                "SELECT extversion, obj_description(oid, 'pg_extension') FROM pg_extension WHERE extname = 'telemetry'"
            ).fetchone()
            print(f"telemetry | {version} | {comment}")
            step("SELECT get_report();  -- exactly what would be sent")
            print(json.dumps(report(conn), indent=2, sort_keys=True))
            step("ALTER SYSTEM SET telemetry.metrics_level = off; SELECT pg_reload_conf();")
            with cluster.connect() as fresh:
                fresh.execute("ALTER SYSTEM SET telemetry.metrics_level = off")
            cluster.reload()
            with cluster.connect("demo") as again:
                r = report(again)
                print(f"metrics_level = {r['metrics_level']} (from {r['metrics_level_source']})")
        print("\ndemo done; the throwaway cluster is removed.")
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
