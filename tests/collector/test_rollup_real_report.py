"""The roll-up's dimensions and the fleet view, from what a real database sends, not from hand-written rows."""

from __future__ import annotations

import bisect
from typing import Any

import psycopg

from telemetry_collector.fleet.rollup import ALL, DIMENSIONS, IGNORED_EXTENSIONS, SIZE_BOUNDS
from telemetry_collector.fleet.views import value_label
from tests import fake_extensions
from tests.collector.helpers import Collector, run_cli
from tests.extension.job.helpers import configure, tick
from tests.helpers import report


def expected_dimensions(sent: dict[str, Any]) -> set[tuple[str, str]]:
    """What docs/collector.md ("Dimensions") says a report counts under, worked out from the report."""
    hypertables = sent.get("timescaledb", {}).get("hypertables", {})
    if hypertables.get("num_compressed_hypertables", 0) > 0:
        timescaledb = "compression"
    elif sent.get("num_hypertables", 0) > 0:
        timescaledb = "hypertables"
    elif sent.get("timescaledb_version") or sent["related_extensions"].get("timescaledb"):
        timescaledb = "installed"
    else:
        timescaledb = "none"
    extensions = {name for name, on in sent["related_extensions"].items() if on}
    extensions |= set(sent["extensions"].get("versions", {}))
    dimensions = {
        ("all", ""),
        ("extension_version", sent["extension_version"]),
        ("postgresql_major", sent["postgresql_version"].split(".")[0]),
        ("os_name", sent["os_name"]),
        ("install_method", sent["install_method"]),
        ("size", str(bisect.bisect_right(SIZE_BOUNDS, sent["data_volume"]))),
        ("timescaledb", timescaledb),
        *(("extension", name) for name in extensions - set(IGNORED_EXTENSIONS)),
        # A loopback sender has no country; the vendor lists no release of what it runs, so no
        # security fix is outstanding, no series is end of life, and the minor lag is unknown.
        ("country", "unknown"),
        ("security", "none"),
        ("end_of_life", "no"),
        ("postgresql_minor_lag", "unknown"),
    }
    if sent.get("timescaledb_version"):
        dimensions.add(("timescaledb_version", ".".join(sent["timescaledb_version"].split(".")[:2])))
    return dimensions


def test_every_dimension_is_computed_from_a_real_get_report(
    pg_tree: Any,
    db: psycopg.Connection[Any],
    collector: Collector,
    collector_dsn: str,
    collector_db: Any,
    start_vendor: Any,
) -> None:
    fake_extensions.install(pg_tree)  # the TimescaleDB stand-in: a compressed hypertable
    db.execute("CREATE EXTENSION pg_stat_statements")
    db.execute("CREATE EXTENSION timescaledb")
    db.execute("CREATE TABLE public.readings (at timestamptz, value float8)")
    db.execute("SELECT _timescaledb_functions.fake_hypertable('public.readings', 2, compress => true)")
    configure(db, f"{collector.url}/v1/report")
    shown = report(db)
    assert tick(db, "telemetry_send_report")["outcome"] == "sent"
    [(sent,)] = collector_db.execute("SELECT report FROM collector.reports").fetchall()
    assert sent == shown

    run_cli("rollup", "--dsn", collector_dsn, "--settle-seconds", "0")
    rolled = set(
        collector_db.execute(
            "SELECT dimension, value FROM collector.rollup_latest WHERE databases = 1 AND last_day = current_date"
        ).fetchall()
    )
    expected = expected_dimensions(sent)
    assert rolled == expected
    # The report exercised the interesting branches: not only "all" and "none".
    assert {("timescaledb", "compression"), ("extension", "timescaledb"), ("extension", "pg_stat_statements")} <= (
        expected
    ), expected
    assert {dimension for dimension, _ in rolled} == {ALL, *DIMENSIONS}

    # And the fleet view shows that database under each of those values, "now".
    now = start_vendor().get("/v1/fleet").json()["now"]
    assert now["databases"] == 1
    for dimension in DIMENSIONS:
        shown_values = sorted((row["value"], row["databases"]) for row in now[dimension])
        assert shown_values == sorted((value_label(dimension, v), 1) for d, v in expected if d == dimension), dimension
