"""Facts fixed at build time (`make INSTALL_METHOD=... TELEMETRY_ENDPOINT=... TELEMETRY_DEFAULT_LEVEL=...`).

`make` writes them into `_build.py` of the installed copy; a source checkout
has none, and reads as version "0+dev".
"""

from __future__ import annotations

from urllib.parse import urlsplit

import telemetry_protocol as protocol

# The Makefile's TELEMETRY_ENDPOINT default (a test checks they agree): a host under .invalid,
# no endpoint (is_no_endpoint).
PLACEHOLDER_ENDPOINT = "https://telemetry.invalid/v1/report"

try:
    from telemetry_extension import _build  # type: ignore[attr-defined]

    VERSION: str = _build.VERSION
    INSTALL_METHOD_BUILT: str = _build.INSTALL_METHOD
    BUILD_OS_NAME: str = _build.BUILD_OS_NAME
    BUILD_OS_VERSION: str = _build.BUILD_OS_VERSION
    DEFAULT_ENDPOINT: str = _build.DEFAULT_ENDPOINT
    DEFAULT_LEVEL_BUILT: str = getattr(_build, "DEFAULT_LEVEL", "basic")
except ImportError:  # a source checkout, not an installed copy
    VERSION = "0+dev"
    INSTALL_METHOD_BUILT = "source"
    BUILD_OS_NAME = "unknown"
    BUILD_OS_VERSION = "unknown"
    DEFAULT_ENDPOINT = PLACEHOLDER_ENDPOINT
    DEFAULT_LEVEL_BUILT = "basic"

# install_method is vocabulary (the protocol's): a packager's typo must not
# become a string that leaves the database.
INSTALL_METHODS = protocol.INSTALL_METHODS
INSTALL_METHOD = INSTALL_METHOD_BUILT if INSTALL_METHOD_BUILT in INSTALL_METHODS else "other"

# The boot value of telemetry.metrics_level the C module was built with (the
# distributor's default); the C module's own value is what PostgreSQL reads.
DISTRIBUTOR_OFF = DEFAULT_LEVEL_BUILT == "off"


def is_no_endpoint(endpoint: str) -> bool:
    """The build's placeholder left in force: its host is under .invalid (RFC 6761: never resolves).

    Such a build sends nothing and logs nothing; an endpoint a superuser sets is always used."""
    host = urlsplit(DEFAULT_ENDPOINT).hostname or ""
    return endpoint == DEFAULT_ENDPOINT and (host == "invalid" or host.endswith(".invalid"))
