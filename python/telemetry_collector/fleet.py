"""What the fleet looks like: the JSON behind GET /v1/fleet and the page.

- active: distinct db_uuid with a report in the last 7 and 30 days;
- share: databases active in the last 30 days by their latest report's
  extension version, PostgreSQL version and OS (count and fraction);
- restored_from_dump: exported_db_uuids seen under more than one db_uuid in
  the stored history (a dump restored elsewhere keeps exported_db_uuid and gets
  a new db_uuid), with the number of such databases beyond the first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

SHARE_DIMENSIONS = ("extension_version", "postgresql_version", "os_name")
SHARE_WINDOW_DAYS = 30
MAX_RESTORED_GROUPS = 50

_ACTIVE = """
    SELECT now(),
           count(DISTINCT db_uuid) FILTER (WHERE received_at >= now() - interval '7 days'),
           count(DISTINCT db_uuid)
      FROM collector.reports
     WHERE received_at >= now() - interval '30 days'
"""

_SHARE = """
    WITH latest AS (
        SELECT DISTINCT ON (db_uuid) extension_version, postgresql_version, os_name
          FROM collector.reports
         WHERE received_at >= now() - interval '30 days'
         ORDER BY db_uuid, received_at DESC
    )
    SELECT GROUPING(extension_version, postgresql_version, os_name),
           extension_version, postgresql_version, os_name, count(*)
      FROM latest
     GROUP BY GROUPING SETS ((extension_version), (postgresql_version), (os_name))
"""
# GROUPING(a, b, c) is a bit mask, 1 where a column is not grouped.
_GROUPING_BITS = {0b011: 0, 0b101: 1, 0b110: 2}

_RESTORED = """
    SELECT exported_db_uuid::text, count(DISTINCT db_uuid) AS databases
      FROM collector.reports
     GROUP BY exported_db_uuid
    HAVING count(DISTINCT db_uuid) > 1
     ORDER BY databases DESC, exported_db_uuid
"""


async def fleet(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    cur = await conn.execute(_ACTIVE)
    row = await cur.fetchone()
    assert row is not None
    generated_at: dt.datetime = row[0]
    active_7, active_30 = row[1], row[2]

    counts: dict[str, dict[str, int]] = {d: {} for d in SHARE_DIMENSIONS}
    cur = await conn.execute(_SHARE)
    for grouping, *values, count in await cur.fetchall():
        index = _GROUPING_BITS[grouping]
        counts[SHARE_DIMENSIONS[index]][values[index]] = count
    share = {
        dim: [
            {"value": value, "databases": n, "share": round(n / active_30, 4) if active_30 else 0.0}
            for value, n in sorted(by_value.items(), key=lambda item: (-item[1], item[0]))
        ]
        for dim, by_value in counts.items()
    }

    cur = await conn.execute(_RESTORED)
    groups = await cur.fetchall()
    return {
        "generated_at": generated_at.astimezone(dt.UTC).isoformat(),
        "active": {"last_7_days": active_7, "last_30_days": active_30},
        "share_window_days": SHARE_WINDOW_DAYS,
        "share": share,
        "restored_from_dump": {
            "exports": len(groups),
            "restored_databases": sum(n - 1 for _, n in groups),
            "groups": [{"exported_db_uuid": e, "db_uuids": n} for e, n in groups[:MAX_RESTORED_GROUPS]],
        },
    }
