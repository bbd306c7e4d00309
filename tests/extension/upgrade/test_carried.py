"""`make install` carries every earlier release a database may still be on, as it shipped.

From source as in the Debian package (tests/extension/test_deb_upgrade.py): each carried
release's Python package comes from its release commit (not its install script,
which ran its migrations without the pinned search_path), so a
database not yet updated keeps running its own version; and once on this
version, telemetry_status says when the server has a newer one installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.extension.upgrade.released import RELEASE_COMMITS, built_release, current_version, earlier_releases
from tests.extension.upgrade.state import extension_version, update
from tests.helpers import release_after, report
from tests.pgtree import REPO, PgTree, temporary_tree

NOT_CARRIED = ["0.1.0"]  # never packaged: see the Makefile
CARRIED = [release for release in earlier_releases() if release not in NOT_CARRIED]


@pytest.fixture(scope="module")
def installed() -> Iterator[PgTree]:
    """A tree with nothing but this checkout's `make install` in it."""
    with temporary_tree("telemetry-carried-") as tree:
        yield tree


def shipped_files(release: str, destination: Path) -> Path:
    """The release commit's Python sources."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", RELEASE_COMMITS[release], "python"], check=True, capture_output=True
    ).stdout
    destination.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
    return destination / "python"


def test_make_install_carries_each_release_as_it_shipped(installed: PgTree, tmp_path: Path) -> None:
    assert CARRIED, "0.2.0 has shipped: it is carried"
    scripts = sorted(p.name for p in (installed.sharedir / "extension").glob("telemetry--*.sql"))
    assert scripts == sorted(
        [
            f"telemetry--{current_version()}.sql",
            *(f"telemetry--{r}--{current_version()}.sql" for r in earlier_releases()),
        ]
    ), "earlier releases' install scripts ran their migrations unpinned: not installed"
    assert sorted(p.name for p in installed.python_dir.iterdir()) == sorted([*CARRIED, current_version()])
    for release in CARRIED:
        sources = shipped_files(release, tmp_path / release)
        for package in ("telemetry_extension", "telemetry_protocol"):
            for path in (sources / package).rglob("*.py"):
                carried = installed.python_dir / release / path.relative_to(sources)
                assert carried.read_bytes() == path.read_bytes(), carried
        built = (installed.python_dir / release / "telemetry_extension" / "_build.py").read_text()
        assert f"VERSION = '{release}'" in built


@pytest.mark.parametrize("release", CARRIED)
def test_a_database_on_a_carried_release_runs_it_then_is_told_of_newer_ones(release: str, installed: PgTree) -> None:
    cluster = Cluster(installed, name="carried").start()
    control = installed.sharedir / "extension" / "telemetry.control"
    ours = control.read_text()
    # The database was made while the release was installed: its own install script, for this
    # test only (make install does not carry it).
    script = installed.sharedir / "extension" / f"telemetry--{release}.sql"
    shutil.copy(built_release(release) / "extension" / "build" / script.name, script)
    try:
        with cluster.database("carried", extension=False) as conn:
            conn.execute(f"CREATE EXTENSION telemetry VERSION '{release}' CASCADE")
            script.unlink()
            assert report(conn)["extension_version"] == release
            update(cluster, "carried")
            with cluster.connect("carried") as updated:
                assert extension_version(updated) == current_version()
                assert updated.execute("SELECT update_available FROM telemetry_status").fetchone() == (None,)
                newer = release_after(current_version())
                control.write_text(re.sub(r"default_version = '[^']*'", f"default_version = '{newer}'", ours))
                assert updated.execute("SELECT update_available FROM telemetry_status").fetchone() == (newer,)
                control.write_text(re.sub(r"default_version = '[^']*'", "default_version = '0.1.0'", ours))
                assert updated.execute("SELECT update_available FROM telemetry_status").fetchone() == (None,)
    finally:
        script.unlink(missing_ok=True)
        control.write_text(ours)
        cluster.destroy()
