"""`make deb`, installed with apt on this machine, on a throwaway cluster of the system's PostgreSQL.

Installs into the system, so it runs only as root (or with passwordless sudo),
only when no telemetry is installed there already, and purges what it installed,
down to the Debian packages the .deb pulled in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests import pgtree
from tests.cluster import Cluster
from tests.extension.test_regress import regress_tests, run_installcheck
from tests.helpers import Notices, control_version, report, scalar
from tests.pgtree import REPO, system_tree

pytestmark = pytest.mark.deb


def packaged_majors() -> list[str]:
    """The majors `make deb` builds a package for here: those in debian/pgversions that this
    Debian release packages itself (pg_buildext's rule; Debian 12: 15, Debian 13: 17)."""
    ours = (REPO / "debian" / "pgversions").read_text().split()
    script = Path("/usr/share/postgresql-common/supported-versions")
    debians = subprocess.check_output([str(script)], text=True).split() if script.exists() else []
    return [major for major in debians if major in ours]


MAJOR = (packaged_majors() or ["15"])[0]  # the system's own major, the one tested
PACKAGE = f"postgresql-{MAJOR}-telemetry"
PG_CONFIG = f"/usr/lib/postgresql/{MAJOR}/bin/pg_config"
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]


def as_root() -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    pytest.skip("installs a Debian package: needs root or passwordless sudo")


def installed_packages() -> dict[str, str]:
    out = subprocess.check_output(
        ["dpkg-query", "-W", "-f", "${db:Status-Status} ${Package}:${Architecture} ${Version}\n"], text=True
    )
    return {
        name: version for status, name, version in (line.split() for line in out.splitlines()) if status == "installed"
    }


def telemetry_files() -> list[str]:
    share = Path(subprocess.check_output([PG_CONFIG, "--sharedir"], text=True).strip()) / "extension"
    pkglib = Path(subprocess.check_output([PG_CONFIG, "--pkglibdir"], text=True).strip())
    return sorted(
        str(p) for p in [*share.glob("telemetry*"), *pkglib.glob("telemetry*"), *pkglib.glob("bitcode/telemetry*")]
    )


def ready_for_packages() -> tuple[list[str], dict[str, str]]:
    """How to run apt as root, and the packages installed before (the build tools installed first:
    they stay, what our packages pull in goes); skips where packages are not to be tested."""
    if pgtree.PG_CONFIG not in ("pg_config", PG_CONFIG):
        pytest.skip(f"packages are tested once, in the run on Debian's PostgreSQL {MAJOR}")
    sudo = as_root()
    if not Path(PG_CONFIG).exists():
        pytest.skip(f"PostgreSQL {MAJOR} from Debian's packages is not installed")
    subprocess.run(["make", "-s", "-C", str(REPO), "deb-deps"], check=True, stdout=subprocess.DEVNULL)
    before, files_before = installed_packages(), telemetry_files()
    if any(name.startswith(f"{PACKAGE}:") for name in before) or files_before:
        pytest.skip(f"telemetry is already installed for PostgreSQL {MAJOR}: {files_before}; not touching it")
    return sudo, before


@pytest.fixture(scope="module")
def installed_deb() -> Iterator[Path]:
    """The package built by `make deb`, installed with apt; afterwards the system as it was."""
    sudo, before = ready_for_packages()
    out = Path(tempfile.mkdtemp(prefix="telemetry-deb-"))
    try:
        subprocess.run(["make", "-s", "-C", str(REPO), "deb", f"DEB_DIR={out}"], check=True, stdout=subprocess.DEVNULL)
        [deb] = out.glob(f"{PACKAGE}_{control_version()}-*_*.deb")
        subprocess.run(
            [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", *APT, "install", str(deb)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        try:
            yield deb
        finally:
            pulled_in = sorted(set(installed_packages()) - set(before))
            subprocess.run(
                [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", *APT, "purge", *pulled_in],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            assert installed_packages() == before
            assert telemetry_files() == []
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_deb_installs_reports_deb_and_purges_clean(installed_deb: Path, httpserver: HTTPServer) -> None:
    info = subprocess.check_output(["dpkg-deb", "-f", str(installed_deb), "Depends"], text=True)
    assert {"python3-requests", "python3-packaging", f"postgresql-plpython3-{MAJOR}"} <= {
        dep.split()[0] for dep in info.split(", ")
    }
    # Nothing from pip in the package: its Python directory holds our code only.
    python_dir = Path(f"/usr/lib/postgresql/{MAJOR}/lib/telemetry/{control_version()}")
    shipped = {path.name for path in python_dir.iterdir()}
    assert shipped and not shipped & {"requests", "urllib3", "packaging", "idna", "certifi", "charset_normalizer"}

    root = Path(tempfile.mkdtemp(prefix="telemetry-deb-cluster-"))
    cluster = Cluster(system_tree(root), conf={"shared_preload_libraries": "'telemetry'"}).start()
    try:
        with cluster.connect() as conn:
            conn.execute("CREATE EXTENSION telemetry CASCADE")
            shown = report(conn)
            assert shown["install_method"] == "deb"
            assert shown["extension_version"] == control_version()
            assert conn.execute("SHOW telemetry.metrics_level").fetchone() == ("basic",)

            # A send imports requests: Debian's, from the interpreter's own sys.path.
            httpserver.expect_request("/v1/report", method="POST").respond_with_json(
                {"latest_version": control_version(), "up_to_date": True}
            )
            conn.execute("SELECT telemetry_set_option('endpoint', %s)", [httpserver.url_for("/v1/report")])
            outcome = scalar(conn, "SELECT telemetry_send_report()")
            assert outcome["outcome"] == "sent", outcome
            [(request, _)] = httpserver.log
            sent = json.loads(request.get_data())
            assert sent["install_method"] == "deb" and sent["extension_version"] == control_version()
            assert scalar(conn, "SELECT body FROM _telemetry.attempts").encode() == request.get_data()
            notices = Notices(conn)
            conn.execute("""DO $$
import sys
plpy.notice(" ".join(sys.modules[name].__file__ for name in ("requests", "urllib3", "packaging.version")))
$$ LANGUAGE plpython3u""")
            [files] = notices.of("NOTICE")
            assert all(path.startswith("/usr/lib/python3/dist-packages/") for path in files.split()), files
            print("server imported:", files)

        # The regression suite on the packaged extension.
        outputdir = cluster.tree.tempdir("regress-")
        code, output = run_installcheck(cluster.socketdir, cluster.port, cluster.user, outputdir)
        assert code == 0, output
        assert all(f"{name}" in output for name in regress_tests())
        print(output)
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def test_deb_autopkgtest_installcheck(installed_deb: Path) -> None:
    """debian/tests/installcheck, as autopkgtest runs it: pg_buildext on a pg_virtualenv cluster."""
    source = installed_deb.parent / f"telemetry-{control_version()}"  # the copy `make deb` built from
    done = subprocess.run(["debian/tests/installcheck"], cwd=source, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"### PostgreSQL {MAJOR} installcheck ###" in done.stdout
    assert all(name in done.stdout for name in regress_tests())
    print(done.stdout)


def test_deb_a_package_for_each_major_this_debian_packages(installed_deb: Path) -> None:
    built = sorted(path.name.split("_")[0] for path in installed_deb.parent.glob("postgresql-*-telemetry_*.deb"))
    assert built == [f"postgresql-{major}-telemetry" for major in packaged_majors()]
    assert {"15", "17"} <= set((REPO / "debian" / "pgversions").read_text().split())
    readme = (REPO / "README.md").read_text()
    assert "on\nDebian 12, `postgresql-15-telemetry`; on Debian 13, `postgresql-17-telemetry`" in readme
