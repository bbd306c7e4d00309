"""telemetry.metrics_level: read the PostgreSQL way, validated, overridable by environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from telemetry_extension.db import Database

SETTING = "telemetry.metrics_level"
LEVELS = ("off", "basic")
# Also the boot value of the C module's setting and the default level of
# telemetry_register_metric(); tests/test_one_owner.py proves they agree.
DEFAULT_LEVEL = "basic"
# PMM's kill switch: set in the server's environment, it wins over every setting.
DISABLE_ENV = "DISABLE_TELEMETRY"
DISABLE_ENV_VALUES = ("1", "true", "yes", "on")

# pg_settings.source is PostgreSQL's own vocabulary; we pass it on as is, and
# tell ALTER SYSTEM apart from postgresql.conf by the file's name (never sent).
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


_settings_declared = False


def declare(db: Database) -> None:
    """Load the C module once per session so the setting is a real parameter."""
    global _settings_declared
    if not _settings_declared:
        db.rows("SELECT _telemetry.declare_settings()")
        _settings_declared = True


def disabled_by_environment() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in DISABLE_ENV_VALUES


def effective_level(db: Database, warn: bool = True) -> Level:
    """What this session's telemetry.metrics_level means, with a WARNING if invalid.

    The scheduled tick passes warn=False: at off, and an invalid value counts
    as off, it logs nothing above DEBUG (get_report() and the NOTICE warn).
    """
    if disabled_by_environment():
        return Level("off", "environment", True)
    declare(db)
    row = db.row(
        "SELECT setting, source, sourcefile FROM pg_catalog.pg_settings WHERE name = $1",
        [SETTING],
        ["text"],
    )
    if row is None:  # cannot happen once declared; stay private if it does
        return Level("off", "other", False)
    configured = (row["setting"] or "").strip().lower()
    source = row["source"] if row["source"] in KNOWN_SOURCES else "other"
    if source == "configuration file" and (row["sourcefile"] or "").endswith("postgresql.auto.conf"):
        source = "alter system"
    if configured in LEVELS:
        return Level(configured, source, True)
    if not warn:
        return Level("off", source, False)
    db.plpy.warning(
        f"telemetry: invalid value for {SETTING}; telemetry is off",
        detail=f"The valid values are: {', '.join(LEVELS)}.",
        hint=f"ALTER SYSTEM SET {SETTING} = basic (or off); SELECT pg_reload_conf();",
    )
    return Level("off", source, False)
