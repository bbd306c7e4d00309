"""At most 50 registered metrics (docs/metrics.md): the 51st is refused, a registered one can still be replaced."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.helpers import report

REGISTER = "SELECT telemetry_register_metric(%s, %s, 'A test metric.', 1000)"


def test_the_fifty_first_registered_metric_is_refused(db: psycopg.Connection[Any]) -> None:
    for n in range(50):
        db.execute(REGISTER, [f"metric_{n:02d}", f"SELECT {n}"])
    with pytest.raises(psycopg.Error, match="at most 50 metrics can be registered"):
        db.execute(REGISTER, ["metric_50", "SELECT 50"])
    assert db.execute(REGISTER, ["metric_07", "SELECT 700"]).fetchone() == (700,)  # replacing one is no 51st
    vendor = report(db)["vendor_metrics"]
    assert len(vendor) == 50 and "metric_50" not in vendor and vendor["metric_07"] == 700
