"""Earlier releases as they shipped, built from their release commits into a test tree.

Each release's own install script and Python package go into the tree beside
the current build's; the C module and the control file stay the current
build's, as on a server where the newer version was installed over the older
one (the C module keeps every symbol an earlier release's SQL names).
"""

from __future__ import annotations

import atexit
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from tests.helpers import control_version
from tests.pgtree import PG_CONFIG, REPO, PgTree, pg_config


def release_commits() -> dict[str, str]:
    """The commit each release was cut from, as sql/releases/commits lists them (the Makefile reads it too)."""
    commits: dict[str, str] = {}
    for line in (REPO / "sql" / "releases" / "commits").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            release, commit = line.split()
            commits[release] = commit
    return commits


RELEASE_COMMITS = release_commits()


# The Python package holding a release's _build.py (0.1.0 had one package, `telemetry`).
BUILD_INFO_PACKAGE = {"0.1.0": "telemetry"}


def build_info(release: str) -> Path:
    """Where a release's _build.py lies, relative to its Python directory."""
    return Path(BUILD_INFO_PACKAGE.get(release, "telemetry_extension"), "_build.py")


def current_version() -> str:
    return control_version()


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def kept_a_ledger(release: str) -> bool:
    """Whether the release recorded its migrations (with their times) in _telemetry.migrations."""
    return version_key(release) >= version_key("0.2.0")


def shipped_releases() -> list[str]:
    """Every release with a manifest, oldest first."""
    return sorted(
        (p.name.removesuffix(".sha256") for p in (REPO / "sql" / "releases").glob("*.sha256")), key=version_key
    )


def earlier_releases() -> list[str]:
    return [r for r in shipped_releases() if version_key(r) < version_key(current_version())]


def pins(requirements: Path) -> set[str]:
    """The `name==version` lines of a requirements file (hashes and comments aside)."""
    return {m[0].lower() for m in re.finditer(r"^[A-Za-z0-9._-]+==[^ \\\n]+", requirements.read_text(), re.MULTILINE)}


@cache
def _built(release: str, pg_config_path: str) -> Path:
    """The release's source tree, built (`make` there) once per pg_config for this test session."""
    src = Path(tempfile.mkdtemp(prefix=f"telemetry-{release}-"))
    atexit.register(shutil.rmtree, src, ignore_errors=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", RELEASE_COMMITS[release]], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    shipped = (src / "telemetry.control").read_text()
    assert f"default_version = '{release}'" in shipped, f"{RELEASE_COMMITS[release]} is not release {release}"
    # The pinned server packages: reuse this checkout's (installed from hashes) when the release
    # pinned the same versions, so that nothing is downloaded unverified.
    ours = REPO / "python" / "build" / "deps"
    if (ours / ".stamp").exists() and pins(REPO / "python" / "requirements-server.txt") == pins(
        src / "python" / "requirements-server.txt"
    ):
        shutil.copytree(ours, src / "python" / "build" / "deps")
        (src / "python" / "build" / "deps" / ".stamp").touch()
    subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(src),
            f"PG_CONFIG={pg_config_path}",
            "python/build/deps/.stamp",
            f"python/build/{build_info(release)}",
            f"extension/build/telemetry--{release}.sql",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return src


def built_release(release: str) -> Path:
    """The release's source tree, built for the PostgreSQL under test."""
    return _built(release, PG_CONFIG)


def install_release(tree: PgTree, release: str) -> None:
    """The release's install script and Python package, as its `make install` puts them."""
    src = _built(release, PG_CONFIG)
    subprocess.run(
        ["make", "-s", "-C", str(src), "install-python", f"DESTDIR={tree.root}", f"PG_CONFIG={PG_CONFIG}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.copy(src / "extension" / "build" / f"telemetry--{release}.sql", tree.sharedir / "extension")
    assert (tree.python_dir / release / build_info(release)).is_file()
    assert pg_config("--sharedir") != tree.sharedir  # never the system's tree
