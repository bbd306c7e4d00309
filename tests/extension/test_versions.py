"""SQL and Python of different versions never run together."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from tests.cluster import Cluster
from tests.helpers import scalar
from tests.pgtree import REPO, PgTree, copy_of_checkout, temporary_tree

OTHER = "9.9.9"


@pytest.fixture(scope="module")
def two_version_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgTree]:
    """A tree with this checkout installed, and the same code installed again as version 9.9.9."""
    with temporary_tree("telemetry-versions-") as tree:
        copy = copy_of_checkout(tmp_path_factory.mktemp("copy") / "repo")
        # Not a git checkout: the carried releases' trees come along, as `make deb` gives them to its copy.
        shutil.copytree(REPO / "python" / "build" / "releases", copy / "python" / "build" / "releases")
        control = copy / "telemetry.control"
        control.write_text(re.sub(r"default_version = '[^']*'", f"default_version = '{OTHER}'", control.read_text()))
        subprocess.run(
            ["make", "-s", "-C", str(copy), "install", f"DESTDIR={tree.root}"], check=True, stdout=subprocess.DEVNULL
        )
        shutil.copy2(REPO / "telemetry.control", tree.sharedir / "extension" / "telemetry.control")
        yield tree


def test_session_with_old_python_refuses_new_sql(two_version_tree: PgTree) -> None:
    with Cluster(two_version_tree, name="versions") as c, c.database("versions", extension=False) as old_session:
        old_session.execute("CREATE EXTENSION telemetry CASCADE")
        current = scalar(old_session, "SELECT get_report() ->> 'extension_version'")
        assert current != OTHER
        with c.connect("versions") as other:
            other.execute("DROP EXTENSION telemetry")
            other.execute(f"CREATE EXTENSION telemetry VERSION '{OTHER}'")
        with pytest.raises(psycopg.Error) as refused:
            old_session.execute("SELECT get_report()")
        diag = refused.value.diag
        assert (diag.message_primary or "").endswith(  # PL/Python prefixes "plpy.Error: "
            f"telemetry: this session runs the Python package {current} but the extension's SQL is {OTHER}"
        )
        assert "Reconnect" in (diag.message_hint or "")
        with c.connect("versions") as fresh:
            assert scalar(fresh, "SELECT get_report() ->> 'extension_version'") == OTHER
        # The package directory of that version disappears: a clear error, not an ImportError.
        shutil.rmtree(two_version_tree.python_dir / OTHER)
        with c.connect("versions") as fresh:
            with pytest.raises(psycopg.Error) as missing:
                fresh.execute("SELECT get_report()")
            assert (missing.value.diag.message_primary or "").endswith(
                f"telemetry: the Python package for extension version {OTHER} is not installed"
            )
            assert "make install" in (missing.value.diag.message_hint or "")
