"""What the SQL functions call: one function per SQL entry point.

Each SQL body is `GD["telemetry_extension"].checked("<version>").<function>(plpy)`.
The job's modules are imported when first called, so that get_report() does
not load them; the sender, and with it `requests`, only when a report is sent.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from telemetry_extension import build_info
from telemetry_extension.db import Database, Plpy
from telemetry_extension.level_setting import SETTING, effective_level
from telemetry_extension.report import build_report, to_json

VERSION = build_info.VERSION
# Said when the level is off because this package was built so (make TELEMETRY_DEFAULT_LEVEL=off).
DISTRIBUTOR_OFF = (
    " Off is this package's default: its distributor built it with TELEMETRY_DEFAULT_LEVEL=off, so nothing is sent "
    f"unless a superuser turns it on (ALTER SYSTEM SET {SETTING} = basic; SELECT pg_reload_conf();)."
)


def checked(sql_version: str) -> ModuleType:
    """This module, after making sure it is the version the calling SQL expects."""
    if sql_version != VERSION:
        import plpy  # type: ignore[import-not-found]  # exists inside the server only

        plpy.error(
            f"telemetry: this session runs the Python package {VERSION} but the extension's SQL is {sql_version}",
            hint="Reconnect to load the matching package; if the mismatch remains, run "
            f"ALTER EXTENSION telemetry UPDATE (or make install for {sql_version}).",
        )
    return sys.modules[__name__]


def get_report(plpy: Plpy) -> str:
    db = Database(plpy)
    return to_json(db, build_report(db))


def announce(plpy: Plpy) -> None:
    """The NOTICE of CREATE EXTENSION (and of every update), with the options in force."""
    from telemetry_extension.job import callers
    from telemetry_extension.job.options import read_options, spoken

    db = Database(plpy)
    level = effective_level(db)
    if not level.enabled:
        plpy.notice(
            f"telemetry: anonymous telemetry is OFF ({SETTING} = off, from {level.source}); nothing will be sent",
            detail="No report is sent and no version check is made while the level is off. "
            "SELECT get_report() still shows what would be sent."
            + (DISTRIBUTOR_OFF if level.source == "default" and build_info.DISTRIBUTOR_OFF else ""),
        )
        return
    options = read_options(db)
    if build_info.is_no_endpoint(options.endpoint):
        plpy.notice(
            "telemetry: nothing will be sent: this build of the extension has no endpoint",
            detail=f"It was built without a collector to send to (its placeholder is {options.endpoint}), so no "
            "report is sent, no version check is made and nothing is logged about it. "
            "SELECT get_report() still shows what a report would hold.",
            hint="A superuser who wants to send sets an endpoint: SELECT telemetry_set_option('endpoint', 'https://...');",
        )
        return
    first = datetime.now(UTC) + options.grace
    hint = f"To turn it off: ALTER SYSTEM SET {SETTING} = off; SELECT pg_reload_conf();"
    preload = db.row(
        """SELECT pg_catalog.current_setting('server_version_num')::int < 170000 AS before_17,
                  pg_catalog.current_setting('shared_preload_libraries') ~ '(^|[ ,])telemetry($|[ ,])'
               OR pg_catalog.current_setting('session_preload_libraries') ~ '(^|[ ,])telemetry($|[ ,])' AS preloaded"""
    )
    if preload and preload["before_17"] and not preload["preloaded"]:
        hint += (
            " On PostgreSQL 15 and 16, ALTER SYSTEM recognises the setting only when telemetry is in"
            " shared_preload_libraries (or session_preload_libraries): see the README."
        )
    wait = "time enough to turn it off" if options.grace >= timedelta(hours=1) else "unless it is turned off first"
    sends = (
        f"Every {spoken(options.interval)} this database sends the report that SELECT get_report() shows: "
        "versions, OS, database size, object counts and random UUIDs; no names, no paths, no setting values. "
        f"It goes to {options.endpoint}. "
    )
    called = callers.find(db)
    if called.tick_caller is not None:
        detail = (
            f"{sends}The first report goes out no earlier than {first.strftime('%Y-%m-%d %H:%M')} UTC "
            f"({spoken(options.grace)} from now), {wait}. The tick is called by: {called.tick_caller}."
        )
    elif called.failing is not None:
        detail = (
            f"{sends}But nothing that works calls the tick in this database: {called.failing}, so nothing is "
            f"sent until that is fixed. To fix it: {callers.CRON_FIX}."
        )
    else:
        detail = (
            f"{sends}But nothing calls the tick in this database yet (no pg_cron job here, no tick seen), so "
            "nothing is sent until something does. Once it is called, the first report goes out no earlier than "
            f"{first.strftime('%Y-%m-%d %H:%M')} UTC ({spoken(options.grace)} from now), {wait}. "
            f"To call it every 15 minutes, run {called.tick_command}"
        )
    plpy.notice("telemetry: anonymous usage telemetry is ON (level basic)", detail=detail, hint=hint)


def tick(plpy: Plpy) -> str:
    from telemetry_extension.job import tick

    return json.dumps(tick.run(Database(plpy), "job"))


def send_report(plpy: Plpy) -> str:
    from telemetry_extension.job import tick

    db = Database(plpy)
    outcome = tick.run(db, "manual")
    if outcome["outcome"] == "disabled":
        plpy.notice(
            f"telemetry: nothing sent: {SETTING} is off (from {outcome['metrics_level_source']})",
            hint=f"ALTER SYSTEM SET {SETTING} = basic; SELECT pg_reload_conf(); turns it on.",
        )
    elif outcome["outcome"] == "no_endpoint":
        plpy.notice(f"telemetry: {outcome['detail']}")
    elif outcome["outcome"] == "read_only":
        plpy.notice(f"telemetry: {outcome['detail']}", hint="Send from the primary, in a read-write transaction.")
    return json.dumps(outcome)


def set_option(plpy: Plpy, name: str, value: str | None) -> str:
    from telemetry_extension.job import options

    db = Database(plpy)
    try:
        options.set_option(db, name, value)
    except options.InvalidOption as exc:
        plpy.error(f"telemetry: invalid option: {exc}", hint=f"Options: {', '.join(options.SPECS)}.")
    # (The first report's due time follows: a trigger on _telemetry.options plans it again.)
    return json.dumps(options.read_options(db).__dict__, default=str)


def plan_first_report(plpy: Plpy) -> None:
    from telemetry_extension.job import schedule

    schedule.plan_first_report(Database(plpy))


def tick_callers(plpy: Plpy) -> dict[str, Any]:
    from telemetry_extension.job import callers

    return callers.find(Database(plpy)).columns()


def status(plpy: Plpy) -> dict[str, Any]:
    from telemetry_extension import status as status_module

    return status_module.status(Database(plpy))


def register_metric(plpy: Plpy, key: str, query: str, summary: str, timeout_ms: int, level: str) -> str:
    from telemetry_extension.metrics import registered

    try:
        value = registered.register(Database(plpy), key, query, summary, timeout_ms, level)
    except registered.InvalidRegistration as exc:
        plpy.error(
            f"telemetry: cannot register metric {key!r}: {exc}",
            hint="The query must be one SELECT returning one row of numbers, e.g. "
            "SELECT count(*) FROM myschema.mytable; schema-qualify every name (search_path is pg_catalog).",
        )
    return json.dumps(value)


def registered_value(plpy: Plpy, key: str) -> str:
    from telemetry_extension.metrics import registered

    return registered.value_json(Database(plpy), key)


def unregister_metric(plpy: Plpy, key: str) -> bool:
    from telemetry_extension.metrics import registered

    return registered.unregister(Database(plpy), key)


def set_metric_enabled(plpy: Plpy, key: str, enabled: bool) -> bool:
    from telemetry_extension.metrics import switches

    try:
        return switches.set_metric_enabled(Database(plpy), key, enabled)
    except switches.InvalidSwitch as exc:
        plpy.error(f"telemetry: {exc}")
        raise  # not reached: plpy.error raises


def metrics_list(plpy: Plpy) -> list[dict[str, Any]]:
    from telemetry_extension.metrics import switches

    return switches.metrics_list(Database(plpy))
