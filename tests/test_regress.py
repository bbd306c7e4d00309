"""`make installcheck` (pg_regress, test/sql against test/expected) on the suite's cluster.

The cluster comes from the private tree (tests/pgtree.py) of the PostgreSQL that
PG_CONFIG names, with telemetry preloaded, so every major the suite runs on also
runs the regression tests.  A failure shows pg_regress's diff.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.cluster import Cluster
from tests.pgtree import PG_CONFIG, REPO


def run_installcheck(host: Path, port: int, user: str, outputdir: Path) -> tuple[int, str]:
    """`make installcheck` against host:port; returns its exit code and output plus any diffs."""
    env = {**os.environ, "PGHOST": str(host), "PGPORT": str(port), "PGUSER": user}
    done = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(REPO),
            "installcheck",
            f"PG_CONFIG={PG_CONFIG}",
            f"EXTRA_REGRESS_OPTS=--outputdir={outputdir}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    diffs = outputdir / "regression.diffs"
    return done.returncode, done.stdout + done.stderr + (diffs.read_text() if diffs.exists() else "")


def regress_tests() -> list[str]:
    return sorted(path.stem for path in (REPO / "test" / "sql").glob("*.sql"))


def test_pg_regress_suite_passes(cluster: Cluster, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    code, output = run_installcheck(cluster.socketdir, cluster.port, cluster.user, tmp_path)
    assert code == 0, output
    # "test name ... ok" up to PostgreSQL 15, "ok 1 - name" (TAP) from 16.
    passed = re.findall(r"^(?:test (\w+)\s+\.\.\. ok|ok \d+\s+[-+] (\w+))\b", output, re.MULTILINE)
    assert sorted(a or b for a, b in passed) == regress_tests(), output
    assert len(regress_tests()) >= 4
