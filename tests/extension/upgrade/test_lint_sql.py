"""`make lint` runs pgspot on every script the build makes, and on each migration as those scripts run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.extension.upgrade.released import current_version
from tests.extension.upgrade.test_build import checkout_copy


def lint(copy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "extension/lint_sql.py", "--version", current_version(), "--sql-dir", "sql"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_scripts_as_built_pass() -> None:
    result = lint(Path(__file__).resolve().parents[3])
    assert result.returncode == 0, result.stdout + result.stderr
    for script in (f"telemetry--{current_version()}.sql", f"telemetry--0.1.0--{current_version()}.sql"):
        assert f"pgspot {script}: 0 to fix" in result.stdout


def test_a_definition_pgspot_refuses_fails_the_lint(tmp_path: Path) -> None:
    copy = checkout_copy(tmp_path)
    (copy / "sql" / "idempotent" / "060-definer.sql").write_text(
        "CREATE OR REPLACE FUNCTION _telemetry.definer() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';\n"
    )
    result = lint(copy)
    assert result.returncode != 0
    assert f"pgspot telemetry--{current_version()}.sql: 1 to fix" in result.stdout, result.stdout
    assert "PS003" in result.stdout


def test_a_migration_is_linted_although_the_guard_hides_it(tmp_path: Path) -> None:
    """EXECUTE hides a migration's statements from pgspot: they are linted as the guard runs them."""
    copy = checkout_copy(tmp_path)
    (copy / "sql" / "incremental" / "900-late.sql").write_text("CREATE SCHEMA IF NOT EXISTS late;\n")
    result = lint(copy)
    assert result.returncode != 0
    assert f"pgspot telemetry--{current_version()}.sql: 0 to fix" in result.stdout, result.stdout
    assert "pgspot as-run-900-late.sql: 1 to fix" in result.stdout and "PS010" in result.stdout, result.stdout
