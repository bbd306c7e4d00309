"""This extension itself: the report's format, its version, how and where it was built."""

from __future__ import annotations

import telemetry_protocol as protocol
from telemetry_extension import build_info
from telemetry_extension.metrics.declaration import NO_SQL, Metric
from telemetry_extension.metrics.values import uname_text

METRICS: tuple[Metric, ...] = (
    Metric(
        "report_format_version",
        "integer",
        "Version of this report's format.",
        "constant of the wire protocol",
        protocol.REPORT_FORMAT_VERSION,
        lambda ctx: protocol.REPORT_FORMAT_VERSION,
        timeout_ms=NO_SQL,
    ),
    Metric(
        "extension_version",
        "string",
        "Version of this telemetry extension.",
        "telemetry.control",
        "0.1.0",
        lambda ctx: build_info.VERSION,
        timeout_ms=NO_SQL,
    ),
    Metric(
        "install_method",
        "string",
        f"How the extension was installed: one of {', '.join(build_info.INSTALL_METHODS)}.",
        "make INSTALL_METHOD=... at build time",
        "source",
        lambda ctx: build_info.INSTALL_METHOD,
        timeout_ms=NO_SQL,
    ),
    Metric(
        "build_os_name",
        "string",
        "Operating system the extension was built on.",
        "uname -s at build time",
        "Linux",
        lambda ctx: uname_text(build_info.BUILD_OS_NAME),
        timeout_ms=NO_SQL,
    ),
    Metric(
        "build_os_version",
        "string",
        "Kernel release the extension was built on.",
        "uname -r at build time",
        "6.1.0-28-amd64",
        lambda ctx: uname_text(build_info.BUILD_OS_VERSION),
        timeout_ms=NO_SQL,
    ),
)
