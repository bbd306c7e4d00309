"""The public SQL names each release has: change a name here when it is renamed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    tick: str
    send_report: str
    set_option: str
    register_metric: str
    unregister_metric: str
    set_metric_enabled: str
    get_report: str = "get_report"
    status_view: str = "telemetry_status"
    metrics_view: str = "telemetry_metrics"


# Each renamed function: its name in 0.1.0, and since 0.2.0.
RENAMED = {
    "tick": ("run_job", "telemetry_tick"),
    "send_report": ("send_report", "telemetry_send_report"),
    "set_option": ("set_telemetry_option", "telemetry_set_option"),
    "register_metric": ("register_metric", "telemetry_register_metric"),
    "unregister_metric": ("unregister_metric", "telemetry_unregister_metric"),
    "set_metric_enabled": ("set_metric_enabled", "telemetry_set_metric_enabled"),
}

RELEASE_0_1_0 = Names(**{field: names[0] for field, names in RENAMED.items()})
RELEASE_0_2_0 = Names(**{field: names[1] for field, names in RENAMED.items()})

# The version being built (telemetry.control's default_version): 0.3.0 kept 0.2.0's names.
CURRENT = RELEASE_0_2_0

BY_RELEASE = {"0.1.0": RELEASE_0_1_0, "0.2.0": RELEASE_0_2_0}
