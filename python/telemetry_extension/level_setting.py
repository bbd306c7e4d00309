"""telemetry.metrics_level: read the PostgreSQL way, validated, overridable by environment."""

from __future__ import annotations

from dataclasses import dataclass

from telemetry_extension.db import Database

SETTING = "telemetry.metrics_level"
LEVELS = ("off", "basic")
# Also the boot value of the C module's setting (unless a distributor built it
# with TELEMETRY_DEFAULT_LEVEL=off: build_info.DEFAULT_LEVEL_BUILT) and the default
# level of telemetry_register_metric(); tests/test_one_owner.py proves they agree.
DEFAULT_LEVEL = "basic"
# PMM's kill switch, DISABLE_TELEMETRY in the server's environment: its rule
# (fail closed: anything but empty, 0, false, no or off disables) is the C
# module's (extension/src/kill_switch.c); the spelling of the level and the
# sources are sql/idempotent/015-level.sql's.  The tick reads them in plain
# SQL without loading Python; this module reads the same functions.

# pg_settings.source is PostgreSQL's own vocabulary; it is passed on as is,
# ALTER SYSTEM told apart from postgresql.conf by the file's name (never sent).
# The collector's allowlist is made from this list; _telemetry.effective_level()
# holds the same list, and tests/test_one_owner.py proves they agree.
KNOWN_SOURCES = (
    "default",
    "configuration file",
    "command line",
    "environment variable",
    "global",
    "database",
    "user",
    "database user",
    "client",
    "override",
    "interactive",
    "test",
    "session",
)


@dataclass(frozen=True)
class Level:
    """The effective metrics level and where it came from."""

    level: str  # "off" | "basic"
    source: str  # KNOWN_SOURCES, "alter system", "environment" (DISABLE_TELEMETRY) or "other"
    valid: bool  # False when the configured value is neither off nor basic

    @property
    def enabled(self) -> bool:
        return self.level != "off"


def effective_level(db: Database, warn: bool = True) -> Level:
    """What this session's telemetry.metrics_level means, with a WARNING if invalid.

    The scheduled tick passes warn=False: at off, and an invalid value counts
    as off, it logs nothing above DEBUG (get_report() and the NOTICE warn).
    """
    row = db.row("SELECT level, source, valid FROM _telemetry.effective_level()")
    if row is None:  # cannot happen; stay private if it does
        return Level("off", "other", False)
    level = Level(row["level"], row["source"], row["valid"])
    if level.valid or not warn:
        return level
    db.plpy.warning(
        f"telemetry: invalid value for {SETTING}; telemetry is off",
        detail=f"The valid values are: {', '.join(LEVELS)} (any case, surrounding spaces ignored).",
        hint=f"ALTER SYSTEM SET {SETTING} = basic (or off); SELECT pg_reload_conf();",
    )
    return level
