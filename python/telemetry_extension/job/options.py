"""Run-time options of the job, kept in _telemetry.options, changed by superusers only.

Absent rows mean the default; `telemetry_set_option(name, NULL)` goes back to it.
The endpoint is an option, not a setting: no role can `SET` it in a session,
so nothing an unprivileged role does can make the server send anywhere.
Each option's default, range and meaning are declared once, in SPECS.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from telemetry_extension import build_info
from telemetry_extension.db import Database


class InvalidOption(ValueError):
    pass


@dataclass(frozen=True)
class Options:
    endpoint: str
    interval: timedelta
    grace: timedelta
    retry_base: timedelta
    jitter: timedelta
    deadline: timedelta
    ca_file: str | None


def check_endpoint(value: str) -> str:
    if len(value) > 2048:
        raise InvalidOption("endpoint is longer than 2048 characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidOption("endpoint must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise InvalidOption("endpoint must not carry credentials")
    return value


def check_ca_file(value: str) -> str:
    if not os.path.isabs(value) or not os.path.isfile(value):
        raise InvalidOption("ca_file must be the absolute path of a readable file on the server")
    return value


@dataclass(frozen=True)
class OptionSpec:
    name: str
    summary: str
    kind: str  # "text" or "interval"
    default: str | timedelta | None
    check: Callable[..., object]


def _interval(name: str, summary: str, default: timedelta, minimum: timedelta, maximum: timedelta) -> OptionSpec:
    """An interval option, valid from `minimum` to `maximum`."""

    def check(value: timedelta) -> timedelta:
        if not minimum <= value <= maximum:
            raise InvalidOption(f"must be between {minimum} and {maximum}")
        return value

    return OptionSpec(name, summary, "interval", default, check)


_SECOND, _HOUR, _DAY = timedelta(seconds=1), timedelta(hours=1), timedelta(days=1)

SPECS: dict[str, OptionSpec] = {
    spec.name: spec
    for spec in (
        OptionSpec(
            "endpoint",
            "URL the report is POSTed to (http or https)",
            "text",
            build_info.DEFAULT_ENDPOINT,
            check_endpoint,
        ),
        _interval("interval", "time between reports", 24 * _HOUR, _SECOND, 31 * _DAY),
        # PMM's grace: the first report waits a day, time enough to turn telemetry off.
        _interval("grace", "wait after CREATE EXTENSION before the first report", 24 * _HOUR, timedelta(0), 31 * _DAY),
        _interval(
            "retry_base", "first retry delay after a failure; doubles up to the interval", _HOUR, _SECOND, 31 * _DAY
        ),
        # A fleet installed together must not call in the same minute.
        _interval("jitter", "largest random delay added to each due time", _HOUR, timedelta(0), _DAY),
        # Every network step of one send together, so a tick is bounded.
        _interval(
            "deadline",
            "overall time limit of one send, all network steps included",
            10 * _SECOND,
            _SECOND,
            60 * _SECOND,
        ),
        OptionSpec(
            "ca_file",
            "CA bundle to verify the endpoint's TLS certificate (default: the system's)",
            "text",
            None,
            check_ca_file,
        ),
    )
}

DEFAULTS = Options(**{name: spec.default for name, spec in SPECS.items()})  # type: ignore[arg-type]
INTERVAL_OPTIONS = [name for name, spec in SPECS.items() if spec.kind == "interval"]


def read_options(db: Database) -> Options:
    rows = db.rows(
        """SELECT name, value,
                  CASE WHEN name = ANY ($1) THEN pg_catalog.date_part('epoch', value::interval) END AS seconds
             FROM _telemetry.options""",
        [INTERVAL_OPTIONS],
        ["text[]"],
    )
    values: dict[str, object] = {}
    for row in rows:
        spec = SPECS.get(row["name"])
        if spec is None:
            continue
        values[spec.name] = timedelta(seconds=row["seconds"]) if spec.kind == "interval" else row["value"]
    return Options(**{**DEFAULTS.__dict__, **values})


def set_option(db: Database, name: str, value: str | None) -> None:
    spec = SPECS.get(name)
    if spec is None:
        raise InvalidOption(f"unknown option {name!r}; options are: {', '.join(SPECS)}")
    if value is None:
        db.rows("DELETE FROM _telemetry.options WHERE name = $1", [name], ["text"])
        return
    if spec.kind == "interval":
        seconds = db.value("SELECT pg_catalog.date_part('epoch', $1::interval)", [value], ["text"])
        try:
            spec.check(timedelta(seconds=seconds))
        except InvalidOption as exc:
            raise InvalidOption(f"{name} {exc}") from exc
    else:
        spec.check(value)
    db.rows(
        """INSERT INTO _telemetry.options (name, value) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET value = excluded.value, changed_at = pg_catalog.now()""",
        [name, value],
        ["text", "text"],
    )


def spoken(duration: timedelta) -> str:
    """A duration as the NOTICE says it: "24 hours", "1 hour", "90 minutes", "2 days", "10 seconds"."""
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size and (unit != "day" or seconds > 86400):
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"
