"""Every key of the report, declared once, by the module of its source of facts.

A metric's value is numbers, booleans, or strings from a fixed vocabulary:
never a name, path or setting value that a user typed.  Each metric runs on
its own (runner.py): a subtransaction, a deadline, an error marker when it
fails.  This module only assembles the declarations, in report order.
"""

from __future__ import annotations

from telemetry_extension.metrics import (
    build,
    extensions,
    host,
    identity,
    level_in_effect,
    postgres_server,
    registered,
    relations,
    timescaledb,
)
from telemetry_extension.metrics.declaration import Metric

METRICS: tuple[Metric, ...] = (
    *build.METRICS,
    *identity.METRICS,
    *host.METRICS,
    *postgres_server.METRICS,
    *extensions.METRICS,
    *timescaledb.METRICS,
    *level_in_effect.METRICS,
    *relations.METRICS,
    *registered.METRICS,
)
