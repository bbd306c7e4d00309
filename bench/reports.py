"""What the benches' synthetic reports share: the values no bench varies, the extensions they draw."""

from __future__ import annotations

from typing import Any

# A report's keys whose values the benches keep constant (the rest each bench draws).
CONSTANT_FIELDS: dict[str, Any] = {
    "report_format_version": 1,
    "os_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1",
    "os_release": "6.1.0-28-amd64",
    "timescaledb_version": None,
    "build_os_name": "Linux",
    "build_os_version": "6.1.0-28-amd64",
    "num_hypertables": 0,
    "metrics_level": "basic",
    "metrics_level_source": "default",
}

# The related_extensions each synthetic database draws, each present with probability 0.3.
RELATED_EXTENSIONS = ("timescaledb", "postgis", "pg_stat_statements", "pg_cron", "vector", "promscale")
