"""Stand-in extensions for the metrics tests, installed into a test tree.

`timescaledb` here is NOT TimescaleDB, which cannot be installed on the test
machines: it is plain SQL that mimics the parts of TimescaleDB 2.x's catalog
the report reads (see docs/metrics.md).  `zqxmarker_ext` is a made-up
in-house extension whose name and version must never be reported.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.pgtree import PgTree

HERE = Path(__file__).resolve().parent


def install(tree: PgTree) -> None:
    """Copies the control and script files into the tree's extension directory (idempotent)."""
    target = tree.sharedir / "extension"
    for source in HERE.iterdir():
        if source.suffix in (".control", ".sql"):
            destination = target / source.name
            if destination.is_symlink() or destination.exists():
                destination.unlink()
            shutil.copy2(source, destination)
            destination.chmod(0o644)
