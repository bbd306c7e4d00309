"""`make installcheck` (pg_regress, tests/regress/sql against tests/regress/expected) on the suite's cluster.

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
    return sorted(path.stem for path in (REPO / "tests" / "regress" / "sql").glob("*.sql"))


def test_pg_regress_suite_passes(cluster: Cluster, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    code, output = run_installcheck(cluster.socketdir, cluster.port, cluster.user, tmp_path)
    assert code == 0, output
    # "test name ... ok" up to PostgreSQL 15, "ok 1 - name" (TAP) from 16.
    passed = re.findall(r"^(?:test (\w+)\s+\.\.\. ok|ok \d+\s+[-+] (\w+))\b", output, re.MULTILINE)
    assert sorted(a or b for a, b in passed) == regress_tests(), output
    assert len(regress_tests()) >= 4


# A build without an endpoint (the Debian package built here, a plain `make`) announces that
# instead: its expected outputs are the others with that one line changed, and nothing else.
ON = "NOTICE:  telemetry: anonymous usage telemetry is ON (level basic)\n"
NO_ENDPOINT = "NOTICE:  telemetry: nothing will be sent: this build of the extension has no endpoint\n"
NO_ENDPOINT_OUTPUTS = {
    "bad_input_1.out": "bad_input.out",
    "privileges_1.out": "privileges.out",
    "report_keys_1.out": "report_keys.out",
    "extension_2.out": "extension.out",
    "extension_3.out": "extension_1.out",
}


def test_the_no_endpoint_outputs_differ_from_the_others_by_the_notice_only() -> None:
    expected = REPO / "tests" / "regress" / "expected"
    for alternative, base in NO_ENDPOINT_OUTPUTS.items():
        text = (expected / base).read_text()
        assert text.count(ON) == 1, base
        assert (expected / alternative).read_text() == text.replace(ON, NO_ENDPOINT), (
            f"tests/regress/expected/{alternative} must be {base} with its NOTICE line changed"
        )
