"""Fleet views: known databases in, exact counts out (GET /v1/fleet)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tests.collector.helpers import Collector, make_report


def post_at(collector: Collector, conn: psycopg.Connection[Any], days_ago: float, **fields: Any) -> dict[str, Any]:
    """Send a report over HTTP, then date it `days_ago` (the partition key moves it)."""
    report = make_report(**fields)
    assert collector.post(report).status_code == 200
    conn.execute(
        """UPDATE collector.reports SET received_at = now() - make_interval(secs => %s)
            WHERE db_uuid = %s AND received_at > now() - interval '1 minute'""",
        (days_ago * 86400, report["db_uuid"]),
    )
    return report


def by_value(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {row["value"]: row["databases"] for row in rows}


def test_fleet_counts_known_databases(start_collector: Any, collector_db: psycopg.Connection[Any]) -> None:
    collector = start_collector(rate_limit_burst=100)
    empty = collector.get("/v1/fleet").json()
    assert empty["active"] == {"last_7_days": 0, "last_30_days": 0}
    assert empty["restored_from_dump"] == {"exports": 0, "restored_databases": 0, "groups": []}

    a, b, c, d, e, f, g = (str(uuid.uuid4()) for _ in range(7))
    dump_x, dump_y = str(uuid.uuid4()), str(uuid.uuid4())
    # a: reported 20 days ago on 0.0.9, upgraded, reported yesterday on 0.1.0.
    post_at(collector, collector_db, 20, db_uuid=a, exported_db_uuid=dump_x, extension_version="0.0.9")
    post_at(collector, collector_db, 1, db_uuid=a, exported_db_uuid=dump_x, extension_version="0.1.0")
    post_at(collector, collector_db, 3, db_uuid=b, extension_version="0.2.0", postgresql_version="16.4")
    post_at(collector, collector_db, 10, db_uuid=c, extension_version="0.2.0", os_name="FreeBSD")
    post_at(collector, collector_db, 40, db_uuid=d, extension_version="0.0.1")  # inactive
    # e and f: a's dump restored twice (new db_uuid, same exported_db_uuid); f long ago.
    post_at(collector, collector_db, 0, db_uuid=e, exported_db_uuid=dump_x, extension_version="0.2.0")
    post_at(collector, collector_db, 50, db_uuid=f, exported_db_uuid=dump_x, extension_version="0.0.1")
    # g: two reports, one dump: not a restore.
    post_at(collector, collector_db, 2, db_uuid=g, exported_db_uuid=dump_y, postgresql_version="16.4")
    post_at(collector, collector_db, 0.5, db_uuid=g, exported_db_uuid=dump_y, postgresql_version="16.4")

    data = collector.get("/v1/fleet").json()

    assert data["active"] == {"last_7_days": 4, "last_30_days": 5}  # a b e g; + c
    assert data["share_window_days"] == 30
    share = data["share"]
    assert by_value(share["extension_version"]) == {"0.1.0": 2, "0.2.0": 3}  # a g; b c e
    assert by_value(share["postgresql_version"]) == {"15.20": 3, "16.4": 2}
    assert by_value(share["os_name"]) == {"Linux": 4, "FreeBSD": 1}
    assert share["os_name"][0] == {"value": "Linux", "databases": 4, "share": 0.8}  # largest first
    assert sum(r["share"] for r in share["extension_version"]) == 1.0
    assert data["restored_from_dump"] == {
        "exports": 1,
        "restored_databases": 2,
        "groups": [{"exported_db_uuid": dump_x, "db_uuids": 3}],
    }
    assert collector.get("/v1/fleet").headers["Cache-Control"] == "no-store"


def test_latest_report_per_database_uses_its_index(collector: Collector, collector_db: psycopg.Connection[Any]) -> None:
    report = make_report()
    assert collector.post(report).status_code == 200
    collector_db.execute("SET enable_seqscan = off")
    plan = "\n".join(
        r[0]
        for r in collector_db.execute(
            """EXPLAIN SELECT * FROM collector.reports WHERE db_uuid = %s ORDER BY received_at DESC LIMIT 1""",
            (report["db_uuid"],),
        ).fetchall()
    )
    assert "reports_y" in plan and "db_uuid_received_at_idx" in plan, plan
