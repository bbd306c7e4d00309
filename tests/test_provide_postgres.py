"""tools/provide-postgres builds only the pinned sources: a file that differs from its pin is refused.

No network: the mirror is a folder on this machine (file://) that serves altered copies of the
pinned files' names, and the cache is a new empty folder.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.pgtree import REPO

pytestmark = pytest.mark.any_major

PINS = REPO / "tools" / "postgres-sources"
PROVIDE = REPO / "tools" / "provide-postgres"


def pinned_files(key: str) -> tuple[str, dict[str, str]]:
    """The source package pinned for a key, and its files' pinned SHA-256."""
    for line in PINS.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == key:
            return fields[1], dict(entry.split("=", 1) for entry in fields[3:])
    raise AssertionError(f"{PINS} pins nothing for {key}")


def built_major() -> str:
    """A major that is built from source on this system (not its own packaged one)."""
    release = re.search(r'^VERSION_ID="?(\d+)', Path("/etc/os-release").read_text(), re.MULTILINE)
    assert release, "/etc/os-release names no VERSION_ID"
    packaged = {"12": "15", "13": "17"}[release[1]]
    return next(key for key in ("17", "18", "15") if key != packaged)


def provide(mirror: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TELEMETRY_PG_MIRROR": f"file://{mirror}", "TELEMETRY_PG_CACHE": str(cache)}
    return subprocess.run([str(PROVIDE), built_major()], env=env, capture_output=True, text=True, timeout=120)


def test_every_pinned_file_has_a_sha256_and_each_built_major_its_orig_tarball() -> None:
    for key in ("15", "17", "18", "cron"):
        package, files = pinned_files(key)
        assert files and all(re.fullmatch(r"[0-9a-f]{64}", sha) for sha in files.values()), key
        assert any(".orig.tar." in name for name in files), key
        assert all(name.startswith(f"{package}_") for name in files), key


def test_a_substituted_file_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    package, files = pinned_files(built_major())
    pool = tmp_path / "mirror" / "pool" / "main" / package[0] / package
    pool.mkdir(parents=True)
    for name in files:
        (pool / name).write_bytes(b"not what Debian published\n")
    result = provide(tmp_path / "mirror", tmp_path / "cache")
    assert result.returncode != 0
    first = next(iter(files))
    assert f"refusing {first}" in result.stderr and files[first] in result.stderr, result.stderr
    assert "Nothing was unpacked or built" in result.stderr
    assert not list((tmp_path / "cache").glob("*+pg-cron-*")), "no tree may be made from a refused file"
    assert not (tmp_path / "cache" / "downloads" / first).exists(), "a refused file is not kept"


def test_a_file_the_mirror_lacks_is_named_with_the_mirror_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    result = provide(tmp_path / "mirror", tmp_path / "cache")
    assert result.returncode != 0
    _, files = pinned_files(built_major())
    first = next(iter(files))
    assert f"cannot download {first}" in result.stderr, result.stderr
    assert f"file://{tmp_path / 'mirror'}" in result.stderr
    assert "--pin-line" in result.stderr and "TELEMETRY_PG_MIRROR" in result.stderr
