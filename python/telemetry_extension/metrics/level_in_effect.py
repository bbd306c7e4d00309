"""The effective telemetry.metrics_level, and where it came from."""

from __future__ import annotations

from telemetry_extension.metrics.declaration import NO_SQL, Metric

METRICS: tuple[Metric, ...] = (
    Metric(
        "metrics_level",
        "string",
        "Effective telemetry.metrics_level: off or basic.",
        "telemetry.metrics_level, DISABLE_TELEMETRY",
        "basic",
        lambda ctx: ctx.level.level,
        timeout_ms=NO_SQL,
    ),
    Metric(
        "metrics_level_source",
        "string",
        "Where the level came from: PostgreSQL's pg_settings.source vocabulary, 'alter system', or 'environment'.",
        "pg_settings.source, DISABLE_TELEMETRY",
        "default",
        lambda ctx: ctx.level.source,
        timeout_ms=NO_SQL,
    ),
)
