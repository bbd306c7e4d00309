"""What the fleet looks like, over time: the JSON behind GET /v1/fleet, from roll-ups only.

Every query reads tables whose size is days x dimension values (never the
reports, never one row per database), so an answer costs the same at any
fleet size.  Days are UTC days; "as of" is the roll-up's watermark.

- activity: per day, databases that reported that day, distinct databases with
  a report in the trailing 7 and 30 days, new databases (first report ever) and
  databases gone quiet (latest report 30 days before, none since);
- adoption: per release, the share of the day's reporting databases on that
  release or a newer one, and the days from its listing to 50% and 90%;
- up_to_date: per day, the share on the newest release listed by that day;
- advisories: per day and now, the share running a version with a security fix
  outstanding (of any listed product: the extension, PostgreSQL, extensions),
  the share on an end-of-life series; now, databases by PostgreSQL minor
  releases behind (the roll-up's advisory dimensions);
- now: databases active in the last 30 days by their latest report, per
  dimension: extension version (release order), PostgreSQL major, OS, install
  method, size bucket, TimescaleDB usage and version, extensions;
- restored_from_dump: counts only.  No identifier of any database is returned.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import psycopg
from packaging.version import Version

import telemetry_protocol as protocol
from telemetry_collector import releases
from telemetry_collector.fleet import rollup

WINDOW_DAYS = 30
DEFAULT_DAYS = 90
MAX_DAYS = 3660
# Releases drawn as adoption curves: the newest ones.
MAX_RELEASES = 8
# Values of one dimension listed; the rest are summed into one "other" row.
MAX_VALUES = 20
OTHER_VALUES = "other values"
QUIET_DAYS = 30


def _size_labels() -> dict[str, str]:
    def human(n: int) -> str:
        for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
            if n >= scale:
                return f"{n // scale} {unit}"
        return f"{n} B"

    bounds = rollup.SIZE_BOUNDS
    labels = {"0": f"under {human(bounds[0])}"}
    for i in range(1, len(bounds)):
        labels[str(i)] = f"{human(bounds[i - 1])} – {human(bounds[i])}"
    labels[str(len(bounds))] = f"{human(bounds[-1])} or more"
    labels["unknown"] = "unknown"
    return labels


SIZE_LABELS = _size_labels()
TIMESCALEDB_LABELS = {
    "none": "not installed",
    "installed": "installed, no hypertables",
    "hypertables": "hypertables",
    "compression": "compressed hypertables",
}

MINOR_LAG_LABELS = {"0": "on the newest minor", "1": "1 minor release behind", "unknown": "major not listed"}


def parse_version(text: str) -> Version | None:
    return protocol.version_or_none(text)


def release_order(values: Iterable[str]) -> list[str]:
    """PEP 440 order, oldest first; strings that are not versions after them, sorted."""
    parsed = [(v, parse_version(v)) for v in values]
    versions = sorted((p, v) for v, p in parsed if p is not None)
    others = sorted(v for v, p in parsed if p is None)
    return [v for _, v in versions] + others


def _major_key(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _order(dimension: str, counts: dict[str, int]) -> list[str]:
    if dimension in ("extension_version", "timescaledb_version"):
        return release_order(counts)
    if dimension == "postgresql_major":
        return sorted(counts, key=_major_key)
    if dimension == "size":
        return [key for key in SIZE_LABELS if key in counts]
    if dimension == "timescaledb":
        return [key for key in rollup.TIMESCALEDB_LEVELS if key in counts]
    if dimension == "postgresql_minor_lag":
        return sorted(counts, key=_major_key)
    return sorted(counts, key=lambda v: (-counts[v], v))


def value_label(dimension: str, value: str) -> str:
    if value == rollup.OTHER:
        return OTHER_VALUES
    if dimension == "size":
        return SIZE_LABELS.get(value, value)
    if dimension == "timescaledb":
        return TIMESCALEDB_LABELS.get(value, value)
    if dimension == "postgresql_minor_lag":
        return MINOR_LAG_LABELS.get(value, f"{value} minor releases behind")
    return value


def _rows(dimension: str, counts: dict[str, int], total: int) -> list[dict[str, Any]]:
    counts = dict(counts)
    # Values the roll-up already counted as other (past its cap per day), then those past MAX_VALUES here.
    other = counts.pop(rollup.OTHER, 0)
    ordered = _order(dimension, counts)
    if len(ordered) + (other > 0) > MAX_VALUES:
        # Keep the largest values, in the dimension's order; sum the rest.
        kept = set(sorted(ordered, key=lambda v: -counts[v])[: MAX_VALUES - 1])
        other += sum(counts[v] for v in ordered if v not in kept)
        ordered = [v for v in ordered if v in kept]
    rows = [(value_label(dimension, v), counts[v]) for v in ordered]
    if other:
        rows.append((OTHER_VALUES, other))
    return [{"value": label, "databases": n, "share": round(n / total, 4) if total else 0.0} for label, n in rows]


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def _fetch(conn: psycopg.AsyncConnection[Any], query: str, params: Any = None) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


async def fleet(conn: psycopg.AsyncConnection[Any], days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """GET /v1/fleet's JSON: each view (the module's text) over the `days` up to the roll-up's watermark."""
    days = max(1, min(days, MAX_DAYS))
    ((watermark, generated_at),) = await _fetch(conn, "SELECT watermark, now() FROM collector.rollup_state")
    listed = await releases.list_releases(conn)
    if watermark is None:
        return _empty(generated_at, days, listed)
    as_of: dt.date = watermark.astimezone(dt.UTC).date()
    series_days = _days(as_of - dt.timedelta(days=days - 1), as_of)
    reporting, by_version = await _reporting(conn, as_of)
    counted = await _counted(conn, as_of)
    activity = await _activity(conn, series_days, reporting, counted)
    now_counts = await _now_counts(conn, as_of)
    return {
        "generated_at": generated_at.astimezone(dt.UTC).isoformat(),
        "rolled_up_to": watermark.astimezone(dt.UTC).isoformat(),
        "days": days,
        "window_days": WINDOW_DAYS,
        "active": {
            "last_7_days": activity["active_7_days"][-1],
            "last_30_days": activity["active_30_days"][-1],
        },
        "activity": activity,
        "adoption": _adoption(listed, reporting, by_version, series_days),
        "up_to_date": _up_to_date(listed, series_days, reporting, by_version, now_counts),
        "advisories": await _advisories(conn, series_days, now_counts),
        "now": await _now(conn, as_of, now_counts),
        "restored_from_dump": {
            "exports": sum(counted["restored_exports"].values()),
            "restored_databases": sum(counted["restored_databases"].values()),
        },
    }


async def _reporting(
    conn: psycopg.AsyncConnection[Any], as_of: dt.date
) -> tuple[dict[dt.date, int], dict[dt.date, dict[str, int]]]:
    """The day's reporting databases, in all and by extension version: every day kept (the
    adoption of an old release began before the window shown)."""
    reporting: dict[dt.date, int] = {}
    by_version: dict[dt.date, dict[str, int]] = defaultdict(dict)
    for day, dimension, value, n in await _fetch(
        conn,
        """SELECT day, dimension, value, databases FROM collector.rollup_daily
            WHERE dimension IN (%s, 'extension_version') AND day <= %s""",
        (rollup.ALL, as_of),
    ):
        if dimension == rollup.ALL:
            reporting[day] = n
        else:
            by_version[day][value] = n
    return reporting, by_version


async def _counted(conn: psycopg.AsyncConnection[Any], as_of: dt.date) -> dict[str, dict[dt.date, int]]:
    """Per day: new databases, databases restored from a dump, and the dumps they came from."""
    counted: dict[str, dict[dt.date, int]] = defaultdict(dict)
    for counter, day, value in await _fetch(
        conn,
        """SELECT counter, day, value FROM collector.rollup_counters
            WHERE counter IN ('new_databases', 'restored_databases', 'restored_exports') AND day <= %s""",
        (as_of,),
    ):
        counted[counter][day] = value
    return counted


async def _activity(
    conn: psycopg.AsyncConnection[Any],
    series_days: list[dt.date],
    reporting: dict[dt.date, int],
    counted: dict[str, dict[dt.date, int]],
) -> dict[str, Any]:
    """Per day: reporting, active in the trailing 7 and 30 days, new, gone quiet."""
    first, as_of = series_days[0], series_days[-1]
    # Running sums of the activity deltas up to each day that has one.
    active: dict[str, dict[dt.date, int]] = defaultdict(dict)
    for counter, day, value in await _fetch(
        conn,
        """SELECT counter, day, (sum(value) OVER (PARTITION BY counter ORDER BY day))::bigint
             FROM collector.rollup_counters WHERE counter = ANY(%s) AND day <= %s""",
        (list(rollup.ACTIVE_WINDOWS), as_of),
    ):
        active[counter][day] = value
    quiet = {
        day + dt.timedelta(days=QUIET_DAYS): n
        for day, n in await _fetch(
            conn,
            """SELECT last_day, databases FROM collector.rollup_latest
                WHERE dimension = %s AND last_day BETWEEN %s AND %s""",
            (rollup.ALL, first - dt.timedelta(days=QUIET_DAYS), as_of - dt.timedelta(days=QUIET_DAYS)),
        )
    }
    return {
        "days": [d.isoformat() for d in series_days],
        "reporting": [reporting.get(d, 0) for d in series_days],
        "active_7_days": _running(active["active_7"], series_days),
        "active_30_days": _running(active["active_30"], series_days),
        "new": [counted["new_databases"].get(d, 0) for d in series_days],
        "gone_quiet": [quiet.get(d, 0) for d in series_days],
    }


def _running(known: dict[dt.date, int], series_days: list[dt.date]) -> list[int]:
    """A running sum known on some days, on each day of the series."""
    out, value = [], 0
    # The value before the window starts: the last running sum at or before it.
    before = [d for d in known if d < series_days[0]]
    if before:
        value = known[max(before)]
    for day in series_days:
        value = known.get(day, value)
        out.append(value)
    return out


def _up_to_date(
    listed: list[releases.Release],
    series_days: list[dt.date],
    reporting: dict[dt.date, int],
    by_version: dict[dt.date, dict[str, int]],
    now_counts: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """Per day and now, the share on the newest release listed by then."""
    newest_now = releases.newest(r.version for r in listed)
    total = now_counts[rollup.ALL].get("", 0)
    return {
        "days": [d.isoformat() for d in series_days],
        "share": [
            _up_to_date_share(listed, day, reporting.get(day, 0), by_version.get(day, {})) for day in series_days
        ],
        "newest_release": newest_now,
        "now": _share(_at_or_above(newest_now, now_counts["extension_version"]), total) if newest_now else None,
    }


async def _now_counts(conn: psycopg.AsyncConnection[Any], as_of: dt.date) -> dict[str, dict[str, int]]:
    """Databases active in the window by their latest report: per dimension, per value."""
    now_rows = await _fetch(
        conn,
        """SELECT dimension, value, sum(databases)::bigint FROM collector.rollup_latest
            WHERE last_day > %s GROUP BY 1, 2""",
        (as_of - dt.timedelta(days=WINDOW_DAYS),),
    )
    now_counts: dict[str, dict[str, int]] = {d: {} for d in (rollup.ALL, *rollup.DIMENSIONS)}
    for dimension, value, n in now_rows:
        if dimension in now_counts:
            now_counts[dimension][value] = n
    return now_counts


async def _now(
    conn: psycopg.AsyncConnection[Any], as_of: dt.date, now_counts: dict[str, dict[str, int]]
) -> dict[str, Any]:
    """The fleet now: active databases, new and gone quiet in the window, and each dimension's rows."""
    total = now_counts[rollup.ALL].get("", 0)
    ((new_recent, quiet_recent),) = await _fetch(
        conn,
        """SELECT (SELECT coalesce(sum(value), 0)::bigint FROM collector.rollup_counters
                    WHERE counter = 'new_databases' AND day > %(window_start)s AND day <= %(as_of)s),
                  (SELECT coalesce(sum(databases), 0)::bigint FROM collector.rollup_latest
                    WHERE dimension = %(all)s AND last_day > %(quiet_start)s AND last_day <= %(quiet_end)s)""",
        {
            "as_of": as_of,
            "window_start": as_of - dt.timedelta(days=WINDOW_DAYS),
            "all": rollup.ALL,
            "quiet_start": as_of - dt.timedelta(days=WINDOW_DAYS + QUIET_DAYS),
            "quiet_end": as_of - dt.timedelta(days=QUIET_DAYS),
        },
    )
    return {
        "databases": total,
        "new_last_30_days": new_recent,
        "gone_quiet_last_30_days": quiet_recent,
        **{dim: _rows(dim, now_counts[dim], total) for dim in rollup.DIMENSIONS},
    }


def _empty(generated_at: dt.datetime, days: int, listed: list[releases.Release]) -> dict[str, Any]:
    return {
        "generated_at": generated_at.astimezone(dt.UTC).isoformat(),
        "rolled_up_to": None,
        "days": days,
        "window_days": WINDOW_DAYS,
        "active": {"last_7_days": 0, "last_30_days": 0},
        "activity": {k: [] for k in ("days", "reporting", "active_7_days", "active_30_days", "new", "gone_quiet")},
        "adoption": {"days": [], "releases": []},
        "up_to_date": {
            "days": [],
            "share": [],
            "newest_release": releases.newest(r.version for r in listed),
            "now": None,
        },
        "advisories": {
            "days": [],
            "security_share": [],
            "end_of_life_share": [],
            "now": {"security_share": None, "end_of_life_share": None},
        },
        "now": {
            "databases": 0,
            "new_last_30_days": 0,
            "gone_quiet_last_30_days": 0,
            **{dim: [] for dim in rollup.DIMENSIONS},
        },
        "restored_from_dump": {"exports": 0, "restored_databases": 0},
    }


def _at_or_above(release: str | None, by_version: dict[str, int]) -> int:
    """Databases on `release` or newer (PEP 440); versions that do not parse are older."""
    if release is None:
        return 0
    floor = Version(release)
    return sum(n for v, n in by_version.items() if (p := parse_version(v)) is not None and p >= floor)


def _up_to_date_share(
    listed: list[releases.Release], day: dt.date, reporting: int, by_version: dict[str, int]
) -> float | None:
    newest = releases.newest(r.version for r in listed if r.added_at.astimezone(dt.UTC).date() <= day)
    return _share(_at_or_above(newest, by_version), reporting) if newest else None


def _adoption(
    listed: list[releases.Release],
    reporting: dict[dt.date, int],
    by_version: dict[dt.date, dict[str, int]],
    series_days: list[dt.date],
) -> dict[str, Any]:
    """Per release (listed ones, or the versions seen when none is listed), its adoption curve."""
    if listed:
        released = {r.version: r.added_at.astimezone(dt.UTC).date() for r in listed}
    else:
        released = {}
        for day in sorted(by_version):
            for version in by_version[day]:
                if parse_version(version) is not None:
                    released.setdefault(version, day)
    chosen = release_order(released)[-MAX_RELEASES:]
    all_days = sorted(reporting)
    out = []
    for version in chosen:
        since = released[version]
        share_by_day = {day: _share(_at_or_above(version, by_version.get(day, {})), reporting[day]) for day in all_days}
        # Listed before the first roll-up day: when it reached the fleet is not known.
        before = not all_days or since < all_days[0]
        reached: dict[str, int | None] = {}
        for target in (0.5, 0.9):
            hit = next((d for d in all_days if d >= since and (share_by_day[d] or 0) >= target), None)
            reached[f"days_to_{int(target * 100)}_percent"] = (hit - since).days if hit and not before else None
        out.append(
            {
                "release": version,
                "released": since.isoformat(),
                "listed_before_first_report": before,
                **reached,
                "share": [share_by_day.get(d) for d in series_days],
            }
        )
    return {"days": [d.isoformat() for d in series_days], "releases": out}


# The advisory dimensions' values that count against the fleet (the page draws these as shares, not bars).
ADVISORY_FLAGS = {"security": "outstanding", "end_of_life": "yes"}


async def _advisories(
    conn: psycopg.AsyncConnection[Any],
    series_days: list[dt.date],
    now_counts: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """Shares with a security fix outstanding and on an end-of-life series, per day and now, of the
    databases judged (a report rolled up before the advisory dimensions existed has none: null, not 0)."""
    flagged: dict[str, dict[dt.date, int]] = defaultdict(dict)
    judged: dict[str, dict[dt.date, int]] = defaultdict(dict)
    for day, dimension, value, n in await _fetch(
        conn,
        """SELECT day, dimension, value, databases FROM collector.rollup_daily
            WHERE dimension = ANY(%s) AND day BETWEEN %s AND %s""",
        (list(ADVISORY_FLAGS), series_days[0], series_days[-1]),
    ):
        judged[dimension][day] = judged[dimension].get(day, 0) + n
        if value == ADVISORY_FLAGS[dimension]:
            flagged[dimension][day] = n

    def share(dimension: str, day: dt.date) -> float | None:
        return _share(flagged[dimension].get(day, 0), judged[dimension].get(day, 0))

    def now(dimension: str) -> float | None:
        counts = now_counts[dimension]
        return _share(counts.get(ADVISORY_FLAGS[dimension], 0), sum(counts.values()))

    return {
        "days": [d.isoformat() for d in series_days],
        "security_share": [share("security", d) for d in series_days],
        "end_of_life_share": [share("end_of_life", d) for d in series_days],
        "now": {"security_share": now("security"), "end_of_life_share": now("end_of_life")},
    }
