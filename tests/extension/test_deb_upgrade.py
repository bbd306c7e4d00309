"""`apt upgrade` from the 0.2.0 package to this one keeps every database working.

The 0.2.0 package is built by its own `make deb` from its release commit, the
current one by this checkout's; both are checked with lintian.  With 0.2.0
installed, two databases create the extension and send; the current package is
installed over it with apt; both databases, still on 0.2.0, answer get_report()
and their tick sends, from 0.2.0's code; one is updated and keeps its identity
and audit trail; purging removes every file of every version.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.cluster import Cluster
from tests.extension.job.helpers import configure
from tests.extension.test_deb import APT, MAJOR, PACKAGE, installed_packages, ready_for_packages, telemetry_files
from tests.extension.upgrade.released import RELEASE_COMMITS, current_version
from tests.extension.upgrade.state import extension_version, kept, state, update
from tests.helpers import Notices, report
from tests.pgtree import REPO, system_tree

pytestmark = pytest.mark.deb

FROM = "0.2.0"  # the first release that was packaged
DATABASES = ("first", "second")
PYTHON_DIR = Path(f"/usr/lib/postgresql/{MAJOR}/lib/telemetry")
EXTENSION_DIR = Path(f"/usr/share/postgresql/{MAJOR}/extension")


@dataclass(frozen=True)
class Packages:
    earlier: Path  # FROM's package, built from its release commit
    current: Path
    sudo: list[str]


def build_release_deb(release: str, workdir: Path) -> Path:
    """The release's package, built by its own `make deb` in a checkout of its release commit."""
    checkout, out = workdir / f"src-{release}", workdir / f"deb-{release}"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(REPO), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", RELEASE_COMMITS[release]], check=True)
    subprocess.run(["make", "-s", "-C", str(checkout), "deb", f"DEB_DIR={out}"], check=True, stdout=subprocess.DEVNULL)
    [deb] = out.glob(f"{PACKAGE}_{release}-*_*.deb")
    return deb


def lintian(deb: Path) -> None:
    done = subprocess.run(["lintian", "--fail-on", "error", str(deb)], capture_output=True, text=True, check=False)
    print(f"lintian {deb.name}: exit {done.returncode}\n{done.stdout}", end="")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [line for line in done.stdout.splitlines() if line.startswith("E:")], done.stdout


def apt(sudo: list[str], *args: str) -> None:
    subprocess.run([*sudo, "env", "DEBIAN_FRONTEND=noninteractive", *APT, *args], check=True, stdout=subprocess.DEVNULL)


def installed_version() -> str:
    return subprocess.check_output(["dpkg-query", "-W", "-f", "${Version}", PACKAGE], text=True)


@pytest.fixture(scope="module")
def packages() -> Iterator[Packages]:
    """Both packages built and linted; FROM's installed.  Afterwards the system as it was."""
    sudo, before = ready_for_packages()
    workdir = Path(tempfile.mkdtemp(prefix="telemetry-deb-upgrade-"))
    try:
        earlier = build_release_deb(FROM, workdir)
        subprocess.run(["make", "-s", "-C", str(REPO), "deb", f"DEB_DIR={workdir / 'deb-current'}"], check=True)
        [current] = (workdir / "deb-current").glob(f"{PACKAGE}_{current_version()}-*_*.deb")
        for deb in (earlier, current):
            lintian(deb)
        apt(sudo, "install", str(earlier))
        try:
            yield Packages(earlier, current, sudo)
        finally:
            pulled_in = sorted(set(installed_packages()) - set(before))
            print("apt-get purge", *pulled_in)
            apt(sudo, "purge", *pulled_in)
            assert installed_packages() == before
            assert telemetry_files() == [], "files of some version outlived the purge"
            assert not PYTHON_DIR.exists()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Peer:
    """The loopback collector: answers with the newest release it is told of, keeps each body."""

    def __init__(self, server: HTTPServer) -> None:
        self.latest = FROM
        self.bodies: list[dict[str, Any]] = []
        server.expect_request("/v1/report", method="POST").respond_with_handler(self.answer)
        self.url = server.url_for("/v1/report")

    def answer(self, request: Request) -> Response:
        self.bodies.append(json.loads(request.get_data()))
        body = {"latest_version": self.latest, "up_to_date": self.latest == self.bodies[-1]["extension_version"]}
        return Response(json.dumps(body), content_type="application/json")


def tick_when_due(cluster: Cluster, dbname: str) -> tuple[dict[str, Any], list[str]]:
    """The tick, as whatever schedules it calls it, once the report is due; its outcome and WARNINGs."""
    with cluster.connect(dbname) as conn:
        conn.execute("UPDATE _telemetry.schedule SET next_due = clock_timestamp() - interval '1 second'")
        notices = Notices(conn)
        row = conn.execute("SELECT telemetry_tick()").fetchone()
        assert row is not None
        return row[0], notices.of("WARNING")


def the_worker_ticks_every_database_after_a_restart(cluster: Cluster, peer: Peer) -> None:
    """The server still runs the module it started with (FROM's, which has no worker); the restart
    the README asks for loads this one, whose background worker then ticks each database by itself,
    the one still on FROM included."""
    cluster.restart()
    sent_before = len(peer.bodies)
    for dbname in DATABASES:
        with cluster.connect(dbname) as conn:
            conn.execute("UPDATE _telemetry.schedule SET next_due = clock_timestamp() - interval '1 second'")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        versions = sorted(body["extension_version"] for body in peer.bodies[sent_before:])
        if versions == sorted([current_version(), FROM]):
            break
        time.sleep(0.5)
    assert versions == sorted([current_version(), FROM]), versions
    with cluster.connect(DATABASES[0]) as conn:
        caller = conn.execute("SELECT tick_caller FROM telemetry_status").fetchone()
    assert caller is not None and "background worker" in caller[0], caller
    print(f"after a restart, the background worker sent from both databases: {versions}")


def available(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    row = conn.execute(
        "SELECT installed_version, default_version FROM pg_available_extensions WHERE name = 'telemetry'"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_apt_upgrade_keeps_databases_on_their_version_until_updated(packages: Packages, httpserver: HTTPServer) -> None:
    peer = Peer(httpserver)
    root = Path(tempfile.mkdtemp(prefix="telemetry-deb-upgrade-cluster-"))
    # tick_interval: FROM's module does not know it; this one's worker, after the restart, ticks each second.
    conf = {"shared_preload_libraries": "'telemetry'", "telemetry.tick_interval": "'1s'"}
    cluster = Cluster(system_tree(root), conf=conf).start()
    try:
        assert installed_version().startswith(f"{FROM}-")
        before = on_the_earlier_package(cluster, peer)
        apt(packages.sudo, "install", str(packages.current))
        assert installed_version().startswith(f"{current_version()}-")
        print(f"apt-get install ./{packages.current.name}: {PACKAGE} {FROM} -> {installed_version()}")
        for dbname in DATABASES:
            still_on_the_earlier_release(cluster, peer, dbname)
        carries_the_earlier_release_as_it_shipped(packages)
        updated_keeps_identity_and_audit(cluster, peer, before)
        the_worker_ticks_every_database_after_a_restart(cluster, peer)
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def on_the_earlier_package(cluster: Cluster, peer: Peer) -> dict[str, Any]:
    """Both databases created on FROM's package and sent once; the first one's state."""
    with cluster.connect() as admin:
        for dbname in DATABASES:
            admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))
    for dbname in DATABASES:
        with cluster.connect(dbname) as conn:
            conn.execute("CREATE EXTENSION telemetry CASCADE")
            assert extension_version(conn) == FROM
            configure(conn, peer.url)
        outcome, _ = tick_when_due(cluster, dbname)
        assert outcome["outcome"] == "sent", outcome
        assert peer.bodies[-1]["extension_version"] == FROM and peer.bodies[-1]["install_method"] == "deb"
        print(f"{dbname}: on the {FROM} package, the tick sent: {outcome['outcome']}")
    with cluster.connect(DATABASES[0]) as conn:
        return {"state": state(conn), "report": report(conn)}


def carries_the_earlier_release_as_it_shipped(packages: Packages) -> None:
    """FROM's Python package, byte for byte what FROM's own package installed; not its install
    script, which ran the migrations without the pinned search_path."""
    shipped = packages.earlier.parent / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(packages.earlier), str(shipped)], check=True)
    assert not (EXTENSION_DIR / f"telemetry--{FROM}.sql").exists()
    assert (EXTENSION_DIR / f"telemetry--{FROM}--{current_version()}.sql").exists()
    carried = sorted((PYTHON_DIR / FROM).rglob("*"))
    for path in carried:
        assert path.is_dir() or path.read_bytes() == (shipped / path.relative_to("/")).read_bytes(), path
    assert {p.relative_to(PYTHON_DIR / FROM) for p in (PYTHON_DIR / FROM).rglob("*")} == {
        p.relative_to(shipped / PYTHON_DIR.relative_to("/") / FROM)
        for p in (shipped / PYTHON_DIR.relative_to("/") / FROM).rglob("*")
    }
    owner = subprocess.check_output(["dpkg-query", "-S", str(PYTHON_DIR / FROM / "telemetry_extension")], text=True)
    assert owner.startswith(f"{PACKAGE}:"), owner
    print(f"{PACKAGE} {current_version()} carries {FROM} as its package shipped it: {len(carried)} paths")


def still_on_the_earlier_release(cluster: Cluster, peer: Peer, dbname: str) -> None:
    """Not yet updated: FROM's code answers and sends, and says a newer release exists."""
    peer.latest = current_version()
    with cluster.connect(dbname) as conn:
        assert extension_version(conn) == FROM
        assert report(conn)["extension_version"] == FROM
        assert available(conn) == (FROM, current_version())
    outcome, warnings = tick_when_due(cluster, dbname)
    assert outcome["outcome"] == "sent", outcome
    assert peer.bodies[-1]["extension_version"] == FROM
    [warning] = warnings
    assert f"version {FROM} is installed; the newest release is {current_version()}" in warning
    assert "ALTER EXTENSION telemetry UPDATE" in warning
    print(f"{dbname}: still on {FROM} after the upgrade: get_report() answers, the tick sent; WARNING: {warning}")


def updated_keeps_identity_and_audit(cluster: Cluster, peer: Peer, before: dict[str, Any]) -> None:
    dbname = DATABASES[0]
    update(cluster, dbname)
    with cluster.connect(dbname) as conn:
        assert extension_version(conn) == current_version()
        after = report(conn)
        identity = ("db_uuid", "exported_db_uuid", "installed_time")
        assert {k: after[k] for k in identity} == {k: before["report"][k] for k in identity}
        now = state(conn)
        assert kept(before["state"], now)["attempts"][: len(before["state"]["attempts"])] == before["state"]["attempts"]
        assert len(now["attempts"]) == len(before["state"]["attempts"]) + 1  # and the send made on FROM
        assert conn.execute("SELECT update_available FROM telemetry_status").fetchone() == (None,)
    outcome, warnings = tick_when_due(cluster, dbname)
    assert outcome["outcome"] == "sent" and warnings == [], (outcome, warnings)
    assert peer.bodies[-1]["extension_version"] == current_version()
    with cluster.connect(DATABASES[1]) as other:
        assert report(other)["extension_version"] == FROM
    print(
        f"{dbname}: ALTER EXTENSION telemetry UPDATE -> {current_version()}, same identity, audit kept, the tick sent"
    )
