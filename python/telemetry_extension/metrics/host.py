"""The server's operating system, as uname tells it."""

from __future__ import annotations

import os

from telemetry_extension.metrics.declaration import NO_SQL, Context, Metric
from telemetry_extension.metrics.values import uname_text


def _uname(ctx: Context) -> os.uname_result:
    return ctx.shared("uname", os.uname)  # type: ignore[no-any-return]


def _uname_metric(key: str, summary: str, flag: str, example: str, part: str) -> Metric:
    """One part of uname, as its safe text."""
    return Metric(
        key,
        "string",
        summary,
        f"uname -{flag} of the server",
        example,
        lambda ctx: uname_text(getattr(_uname(ctx), part)),
        timeout_ms=NO_SQL,
    )


METRICS: tuple[Metric, ...] = (
    _uname_metric("os_name", "Operating system of the server.", "s", "Linux", "sysname"),
    _uname_metric(
        "os_version",
        "Kernel build of the server.",
        "v",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
        "version",
    ),
    _uname_metric("os_release", "Kernel release of the server.", "r", "6.1.0-28-amd64", "release"),
)
