"""The third-party packages the server imports, pinned and installed beside ours.

`make install` puts `telemetry_extension`, `telemetry_protocol` and the pinned
packages of python/requirements-server.txt into one directory per extension
version.  That directory is on `sys.path` only while something of ours is
imported (the loader, _telemetry.load_python(), does the same for the
package itself): another PL/Python function of the session never finds our
packages first when it imports its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# This version's directory: the parent of the telemetry_extension package.
DIRECTORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextmanager
def on_sys_path() -> Iterator[None]:
    """DIRECTORY first on sys.path for the imports inside the block, then as before."""
    if DIRECTORY in sys.path:
        yield
        return
    sys.path.insert(0, DIRECTORY)
    try:
        yield
    finally:
        sys.path.remove(DIRECTORY)
