"""A private PostgreSQL installation tree with this checkout's extension in it.

PostgreSQL finds its share and lib directories relative to its own binary, so
a copy of the bin directory beside links to the system's share and lib trees
is a complete installation; `make install DESTDIR=...` then puts the extension
into it.  Tests and the demo need no root for this, never touch the system's
extension directory, and parallel checkouts do not see each other's builds.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_CONFIG = os.environ.get("PG_CONFIG", "pg_config")


def pg_config(option: str) -> Path:
    return Path(subprocess.check_output([PG_CONFIG, option], text=True).strip())


def pg_version() -> str:
    """The version of the installation PG_CONFIG names, e.g. "17.11" (no packager's suffix)."""
    out = subprocess.check_output([PG_CONFIG, "--version"], text=True)  # "PostgreSQL 15.20 (Debian ...)"
    return out.split()[1]


def pg_major() -> int:
    match = re.match(r"\d+", pg_version())  # "17.11", "18beta1"
    assert match, pg_version()
    return int(match.group())


def server_os_user() -> str:
    """PostgreSQL refuses to run as root: as root, clusters run as `postgres`."""
    if os.geteuid() == 0:
        return os.environ.get("TELEMETRY_TEST_OS_USER", "postgres")
    return pwd.getpwuid(os.geteuid()).pw_name


def as_server_user(command: list[str]) -> list[str]:
    """`command`, run as the server's OS user (see server_os_user)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", server_os_user(), "--", *command]
    return command


def give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(server_os_user())
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class PgTree:
    root: Path
    bindir: Path
    sharedir: Path
    pkglibdir: Path

    @property
    def pg_ctl(self) -> Path:
        """pg_ctl, run as the server's OS user (see server_os_user)."""
        return self.root / "pg_ctl-as-server-user"

    @property
    def python_dir(self) -> Path:
        return self.pkglibdir / "telemetry"

    def tempdir(self, prefix: str) -> Path:
        """A directory the server's OS user owns, inside this tree's root."""
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))
        path.chmod(0o755)
        give_to_server_user(path)
        return path


def _write_pg_ctl_wrapper(root: Path, bindir: Path) -> None:
    wrapper = root / "pg_ctl-as-server-user"
    real = bindir / "pg_ctl"
    if os.geteuid() == 0:
        # cd /: the caller's directory may be closed to the server's user.
        wrapper.write_text(f'#!/bin/sh\ncd /\nexec runuser -u {server_os_user()} -- "{real}" "$@"\n')
    else:
        wrapper.write_text(f'#!/bin/sh\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)


def system_tree(root: Path) -> PgTree:
    """The system's own installation (after `make install`); `root` holds only scratch files."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    _write_pg_ctl_wrapper(root, pg_config("--bindir"))
    return PgTree(root, pg_config("--bindir"), pg_config("--sharedir"), pg_config("--pkglibdir"))


# The suite's build has an endpoint, as a vendor's release does: a reserved .example name that never
# resolves (tests that send set a loopback endpoint).  A build left with the placeholder sends
# nothing at all (tests/extension/test_build_defaults.py builds one).
TEST_BUILD = ("TELEMETRY_ENDPOINT=https://collector.example/v1/report",)


def build_tree(root: Path, source: Path = REPO, make_vars: tuple[str, ...] = TEST_BUILD) -> PgTree:
    """A private tree with the extension built from `source` with `make_vars` installed in it."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    sys_bindir, sys_sharedir, sys_pkglibdir = (pg_config(o) for o in ("--bindir", "--sharedir", "--pkglibdir"))
    bindir, sharedir, pkglibdir = (root / p.relative_to("/") for p in (sys_bindir, sys_sharedir, sys_pkglibdir))
    # Binaries are copied (PostgreSQL resolves symlinks to find itself); the
    # rest is linked, file by file, minus any system-installed telemetry.
    shutil.copytree(sys_bindir, bindir, symlinks=False)
    for src, dst in ((sys_sharedir, sharedir), (sys_pkglibdir, pkglibdir)):
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-rs", str(src), str(dst)], check=True)
    stale_files = [
        *sharedir.glob("extension/telemetry*"),
        *pkglibdir.glob("telemetry*"),
        *pkglibdir.glob("bitcode/telemetry*"),
    ]
    for stale in stale_files:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    subprocess.run(
        ["make", "-s", "-C", str(source), "install", f"DESTDIR={root}", f"PG_CONFIG={PG_CONFIG}", *make_vars],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    _write_pg_ctl_wrapper(root, bindir)
    return PgTree(root, bindir, sharedir, pkglibdir)


@contextmanager
def temporary_tree(prefix: str, source: Path = REPO, make_vars: tuple[str, ...] = TEST_BUILD) -> Iterator[PgTree]:
    """build_tree() in a new directory, removed afterwards (not under pytest's 0700 tmp: the server reads it)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield build_tree(root, source, make_vars)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def copy_of_checkout(target: Path) -> Path:
    """This checkout's tracked and new files, copied to `target`; with its pinned Python dependencies, not a
    second download of them."""
    files = subprocess.check_output(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, text=True
    ).split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    shutil.copytree(REPO / "python" / "build" / "deps", target / "python" / "build" / "deps")
    return target
