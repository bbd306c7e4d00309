"""Fleet views: known databases in, exact counts out (GET /v1/fleet on the vendor side)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import psycopg

from telemetry_collector.fleet import rollup
from telemetry_collector.fleet.views import MAX_VALUES
from tests.collector.fleet_helpers import at, known_fleet, roll_up, store, today
from tests.collector.helpers import make_report

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def by_value(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(value, databases) in the order the view gives them."""
    return [(row["value"], row["databases"]) for row in rows]


def test_the_fleet_over_time_and_now(
    collector_dsn: str, collector_db: psycopg.Connection[Any], start_vendor: Any
) -> None:
    vendor = start_vendor()
    empty = vendor.get("/v1/fleet").json()
    assert empty["rolled_up_to"] is None
    assert empty["active"] == {"last_7_days": 0, "last_30_days": 0}

    t, _ = known_fleet(collector_db)
    roll_up(collector_dsn, until=at(t, 23))
    response = vendor.get("/v1/fleet?days=45")
    assert response.status_code == 200
    data = response.json()

    # No identifier of any database, anywhere in the answer.
    assert not UUID.search(response.text), UUID.search(response.text)

    days = data["activity"]["days"]
    assert len(days) == 45 and days[-1] == t.isoformat()

    def on(n: int, series: list[Any]) -> Any:
        return series[days.index((t - dt.timedelta(days=n)).isoformat())]

    a = data["activity"]
    assert data["active"] == {"last_7_days": 4, "last_30_days": 5}  # a b e g; and c
    assert [on(n, a["reporting"]) for n in (40, 20, 10, 3, 2, 1, 0)] == [1, 1, 1, 1, 1, 1, 2]
    assert on(20, a["active_30_days"]) == 2  # a, and d (20 days before)
    assert on(11, a["active_30_days"]) == 2 and on(10, a["active_30_days"]) == 2  # d drops out as c comes
    assert on(14, a["active_7_days"]) == 1 and on(13, a["active_7_days"]) == 0  # a: 20 days ago, for 7 days
    assert on(0, a["active_7_days"]) == 4
    assert [on(n, a["new"]) for n in (40, 20, 10, 3, 2, 1, 0)] == [1, 1, 1, 1, 1, 0, 1]
    assert on(10, a["gone_quiet"]) == 1 and sum(a["gone_quiet"]) == 1  # d: 30 days after its last report
    assert data["now"]["new_last_30_days"] == 5 and data["now"]["gone_quiet_last_30_days"] == 1

    releases = {r["release"]: r for r in data["adoption"]["releases"]}
    assert list(releases) == ["0.9.0", "0.10.0"]  # release order
    assert releases["0.10.0"]["released"] == (t - dt.timedelta(days=10)).isoformat()
    # 10 days ago only c (0.9.0) reported; 3 days ago b on 0.10.0: 100%.
    assert (releases["0.10.0"]["days_to_50_percent"], releases["0.10.0"]["days_to_90_percent"]) == (7, 7)
    assert on(10, releases["0.10.0"]["share"]) == 0.0 and on(0, releases["0.10.0"]["share"]) == 0.5
    assert releases["0.9.0"]["days_to_50_percent"] == 0
    assert on(5, releases["0.9.0"]["share"]) is None  # nobody reported that day

    utd = data["up_to_date"]
    assert utd["newest_release"] == "0.10.0"
    # Against the newest release listed by each day: 0.9.0 until 10 days ago.
    assert [on(n, utd["share"]) for n in (20, 10, 3, 2, 1, 0)] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.5]
    assert utd["now"] == 0.6  # a b e of 5

    now = data["now"]
    assert now["databases"] == 5
    assert by_value(now["extension_version"]) == [("0.2.0", 1), ("0.9.0", 1), ("0.10.0", 3)]
    assert by_value(now["postgresql_major"]) == [("15", 3), ("16", 1), ("17", 1)]
    assert by_value(now["os_name"]) == [("Linux", 4), ("FreeBSD", 1)]
    assert by_value(now["install_method"]) == [("source", 4), ("deb", 1)]
    assert by_value(now["size"]) == [("under 10 MB", 4), ("1 GB – 10 GB", 1)]
    assert by_value(now["timescaledb"]) == [("not installed", 4), ("hypertables", 1)]
    assert by_value(now["timescaledb_version"]) == [("2.17", 1)]
    assert by_value(now["extension"]) == [("pg_cron", 5), ("postgis", 1), ("timescaledb", 1)]
    assert now["extension_version"][2]["share"] == 0.6
    assert data["restored_from_dump"] == {"exports": 1, "restored_databases": 1}


def test_exports(collector_dsn: str, collector_db: psycopg.Connection[Any], start_vendor: Any) -> None:
    t, _ = known_fleet(collector_db)
    store(collector_db, at(t, 3), os_name='=HYPERLINK("x")')
    roll_up(collector_dsn, until=at(t, 23))
    vendor = start_vendor()

    activity = vendor.get("/v1/export/activity.csv?days=3")
    assert activity.headers["Content-Type"].startswith("text/csv")
    assert activity.text.splitlines() == [
        "day,reporting,active_7_days,active_30_days,new,gone_quiet,up_to_date_share",
        f"{t - dt.timedelta(days=2)},1,2,4,1,0,0.0",
        f"{t - dt.timedelta(days=1)},1,3,4,0,0,1.0",
        f"{t},3,5,6,2,0,0.3333",
    ]
    daily = vendor.get("/v1/export/daily.csv?days=1").text.splitlines()
    assert daily[0] == "day,dimension,value,databases"
    assert f"{t},databases,,3" in daily
    assert f"{t},extension_version,0.10.0,1" in daily
    # A value a spreadsheet would run as a formula is quoted as text.
    assert f'{t},os_name,"\'=HYPERLINK(""x"")",1' in daily
    assert not any(UUID.search(line) for line in daily + activity.text.splitlines())

    bad = vendor.get("/v1/fleet?days=0")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
    assert vendor.get("/v1/export/daily.csv?days=x").status_code == 400
    assert vendor.get("/v1/nothing").json()["error"] == "not_found"


def test_versions_are_grouped_by_their_normal_form_and_invented_values_are_capped(
    collector_dsn: str, collector_db: psycopg.Connection[Any], start_collector: Any, start_vendor: Any
) -> None:
    collector = start_collector()
    # Through the edge: one version in several spellings, each from its own database.
    for spelling in ("0.2.0", "\n 0.2.0 \t", "v0.2.0", "V0.2.0", "00.2.0"):
        assert collector.post(make_report(extension_version=spelling, timescaledb_version=" v2.17.2")).ok
    stored = collector_db.execute(
        "SELECT DISTINCT extension_version, report->>'extension_version', report->>'timescaledb_version'"
        " FROM collector.reports"
    ).fetchall()
    assert stored == [("0.2.0", "0.2.0", "2.17.2")]
    # All of it on one day, whenever the test runs (near midnight, "a minute ago" is another day).
    noon = at(today(collector_db) - dt.timedelta(days=1))
    collector_db.execute("UPDATE collector.reports SET received_at = %s", (noon,))
    # Stored before the edge normalized versions: normalized by the roll-up; text that is no version, one value.
    for spelling in (" 0.2.0", "v0.2.0", "0.2.0-RC1", "0.2.0rc1", "banana", "\x01banana"):
        store(collector_db, noon, extension_version=spelling)
    # A flood of invented versions, one database each, and one invented version shared by three.
    for n in range(rollup.MAX_VALUES_PER_DAY + 40):
        store(collector_db, noon, extension_version=f"9.{n}")
    for _ in range(3):
        store(collector_db, noon, extension_version="8.0")
    roll_up(collector_dsn)

    daily = dict(
        collector_db.execute(
            "SELECT value, databases FROM collector.rollup_daily WHERE dimension = 'extension_version'"
        ).fetchall()
    )
    total = 5 + 6 + rollup.MAX_VALUES_PER_DAY + 40 + 3
    assert len(daily) == rollup.MAX_VALUES_PER_DAY + 1  # the cap, and the rest as one value
    # The most widespread values are kept: 0.2.0 from the edge and as stored before, 8.0, then the rest.
    assert (daily["0.2.0"], daily["8.0"], daily["0.2.0rc1"], daily[rollup.UNPARSABLE]) == (7, 3, 2, 2)
    assert daily[rollup.OTHER] == total - (7 + 3 + 2 + 2) - (rollup.MAX_VALUES_PER_DAY - 4)
    assert sum(daily.values()) == total
    latest = collector_db.execute(
        "SELECT value, databases FROM collector.rollup_latest WHERE dimension = 'extension_version'"
    ).fetchall()
    assert dict(latest) == daily

    now = start_vendor().get("/v1/fleet?days=1").json()["now"]
    versions = dict(by_value(now["extension_version"]))
    assert len(versions) == MAX_VALUES and versions["0.2.0"] == 7 and versions["other values"] > 0
    assert sum(versions.values()) == now["databases"] == total
