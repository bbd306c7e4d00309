"""`make uninstall` takes away everything `make install` put in place."""

from __future__ import annotations

import subprocess

from tests.pgtree import PG_CONFIG, REPO, TEST_BUILD, temporary_tree


def test_uninstall_leaves_no_file_of_the_extension() -> None:
    with temporary_tree("telemetry-uninstall-") as tree:
        patterns = (
            (tree.sharedir, "extension/telemetry*"),
            (tree.pkglibdir, "telemetry*"),
            (tree.pkglibdir, "bitcode/telemetry*"),
        )
        installed = [path for root, pattern in patterns for path in root.glob(pattern)]
        assert {path.name for path in installed} >= {"telemetry.control", "telemetry.so", "telemetry"}
        subprocess.run(
            ["make", "-s", "-C", str(REPO), "uninstall", f"DESTDIR={tree.root}", f"PG_CONFIG={PG_CONFIG}", *TEST_BUILD],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        left = [path for root, pattern in patterns for path in root.glob(pattern)]
        assert left == []
