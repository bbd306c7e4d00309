"""The server's operating system, as uname tells it."""

from __future__ import annotations

import os

from telemetry_extension.metrics.declaration import NO_SQL, Context, Metric
from telemetry_extension.metrics.values import uname_text


def _uname(ctx: Context) -> os.uname_result:
    return ctx.shared("uname", os.uname)  # type: ignore[no-any-return]


METRICS: tuple[Metric, ...] = (
    Metric(
        "os_name",
        "string",
        "Operating system of the server.",
        "uname -s of the server",
        "Linux",
        lambda ctx: uname_text(_uname(ctx).sysname),
        timeout_ms=NO_SQL,
    ),
    Metric(
        "os_version",
        "string",
        "Kernel build of the server.",
        "uname -v of the server",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
        lambda ctx: uname_text(_uname(ctx).version),
        timeout_ms=NO_SQL,
    ),
    Metric(
        "os_release",
        "string",
        "Kernel release of the server.",
        "uname -r of the server",
        "6.1.0-28-amd64",
        lambda ctx: uname_text(_uname(ctx).release),
        timeout_ms=NO_SQL,
    ),
)
