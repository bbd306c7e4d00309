"""The build refuses sources that would break a release; `make` says what to do instead."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.extension.upgrade.released import current_version
from tests.pgtree import PG_CONFIG, REPO

SERVER_PYTHON = "/usr/bin/python3"


def checkout_copy(tmp_path: Path) -> Path:
    """What `make` needs to build the SQL scripts, copied so that the test may break it."""
    copy = tmp_path / "src"
    copy.mkdir()
    for name in ("Makefile", "telemetry.control"):
        shutil.copy(REPO / name, copy / name)
    shutil.copytree(REPO / "sql", copy / "sql")
    shutil.copytree(
        REPO / "extension",
        copy / "extension",
        ignore=shutil.ignore_patterns("build", "*.o", "*.so", "*.bc", "__pycache__"),
    )
    shutil.copytree(REPO / "python", copy / "python", ignore=shutil.ignore_patterns("build", "__pycache__"))
    return copy


def make_sql(copy: Path) -> subprocess.CompletedProcess[str]:
    version = current_version()
    return subprocess.run(
        ["make", "-s", "-C", str(copy), f"PG_CONFIG={PG_CONFIG}", f"extension/build/telemetry--{version}.sql"],
        capture_output=True,
        text=True,
        check=False,
    )


def edit_released(sql: Path) -> None:
    with (sql / "incremental" / "002-job.sql").open("a") as f:
        f.write("ALTER TABLE _telemetry.options ADD COLUMN note text;\n")


def remove_released(sql: Path) -> None:
    (sql / "incremental" / "003-metrics.sql").unlink()


def insert_before_released(sql: Path) -> None:
    (sql / "incremental" / "002-early.sql").write_text("SELECT 1;\n")


def add_to_shipped_version(sql: Path) -> None:
    (sql / "releases" / f"{current_version()}.sha256").write_text((sql / "releases" / "0.1.0.sha256").read_text())
    (sql / "incremental" / "900-late.sql").write_text("SELECT 1;\n")


def last_shipped() -> str:
    """The last migration any release shipped: a new one must sort after it."""
    return max(
        line.split()[1] for m in (REPO / "sql" / "releases").glob("*.sha256") for line in m.read_text().splitlines()
    )


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (edit_released, "002-job.sql shipped in telemetry 0.1.0 and has changed"),
        (remove_released, "003-metrics.sql shipped in telemetry 0.1.0 and is gone"),
        (insert_before_released, f"002-early.sql is new but sorts before {last_shipped()}"),
        (add_to_shipped_version, f"telemetry {current_version()} has shipped"),
    ],
)
def test_build_refuses_what_would_break_a_release(
    tmp_path: Path, breakage: Callable[[Path], None], message: str
) -> None:
    copy = checkout_copy(tmp_path)
    assert make_sql(copy).returncode == 0, "the copy builds before it is broken"
    built = copy / "extension" / "build" / f"telemetry--{current_version()}.sql"
    built.unlink()
    breakage(copy / "sql")
    result = make_sql(copy)
    assert result.returncode != 0
    assert "telemetry: build refused:" in result.stderr and message in result.stderr, result.stderr
    if breakage is edit_released:
        assert "put the change in a new migration" in result.stderr
    assert not built.exists()


def test_a_new_migration_goes_into_every_script(tmp_path: Path) -> None:
    copy = checkout_copy(tmp_path)
    (copy / "sql" / "incremental" / "900-late.sql").write_text("SELECT 1;\n")
    assert make_sql(copy).returncode == 0
    result = subprocess.run(
        ["make", "-s", "-C", str(copy), f"PG_CONFIG={PG_CONFIG}", "sql-scripts"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for script in (copy / "extension" / "build").glob("telemetry--*.sql"):
        assert "sql/incremental/900-late.sql" in script.read_text(), script.name


def test_release_manifest_freezes_the_version(tmp_path: Path) -> None:
    copy = checkout_copy(tmp_path)
    cmd = [SERVER_PYTHON, "extension/build.py", "release-manifest", "--version", current_version(), "--sql-dir", "sql"]
    first = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    written = (copy / "sql" / "releases" / f"{current_version()}.sha256").read_text()
    check = subprocess.run(
        ["sha256sum", "-c", f"../releases/{current_version()}.sha256"],
        cwd=copy / "sql" / "incremental",
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and len(written.splitlines()) == len(list((copy / "sql" / "incremental").glob("*")))
    again = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, check=False)
    assert again.returncode != 0 and "has shipped already" in again.stderr
