"""Server facts that identify nobody: version, size, replication role, databases, uptime, features on.

Only booleans and small counts: never a setting's value, which a user typed.
"""

from __future__ import annotations

from telemetry_extension.metrics.declaration import Context, Field, Metric


def postgresql_version(ctx: Context) -> str:
    # server_version_num, not server_version: a packager's or builder's
    # free-text suffix must not leave the database.
    num = int(ctx.db.value("SELECT pg_catalog.current_setting('server_version_num')::int"))
    return f"{num // 10000}.{num % 10000}"


def data_volume(ctx: Context) -> int:
    return int(ctx.db.value("SELECT pg_catalog.pg_database_size(pg_catalog.current_database())"))


def replication(ctx: Context) -> dict[str, bool | int]:
    row = ctx.db.row(
        """SELECT pg_catalog.pg_is_in_recovery() AS is_standby,
                  (SELECT count(*) FROM pg_catalog.pg_stat_get_wal_senders()) AS num_wal_senders"""
    )
    assert row is not None
    return {"is_standby": bool(row["is_standby"]), "num_wal_senders": int(row["num_wal_senders"])}


def num_databases(ctx: Context) -> int:
    return int(ctx.db.value("SELECT count(*) FROM pg_catalog.pg_database WHERE NOT datistemplate"))


def uptime_days(ctx: Context) -> int:
    return int(
        ctx.db.value(
            """SELECT pg_catalog.floor(pg_catalog.date_part('epoch',
                                                        pg_catalog.now() - pg_catalog.pg_postmaster_start_time())
                                   / 86400)::int"""
        )
    )


FEATURES = {
    "ssl": "ssl = on",
    "wal_level_logical": "wal_level = logical",
    "archive_mode": "archive_mode is on or always",
    "pg_stat_statements_loaded": "pg_stat_statements is in shared_preload_libraries",
    "data_checksums": "data_checksums = on",
}


def server_features(ctx: Context) -> dict[str, bool]:
    # Each setting is compared in SQL: only the boolean leaves the statement.
    # shared_preload_libraries is readable by superusers and pg_read_all_settings
    # (pg_monitor), the roles that may call get_report().
    row = ctx.db.row(
        """SELECT pg_catalog.current_setting('ssl') = 'on' AS ssl,
                  pg_catalog.current_setting('wal_level') = 'logical' AS wal_level_logical,
                  pg_catalog.current_setting('archive_mode') <> 'off' AS archive_mode,
                  pg_catalog.current_setting('shared_preload_libraries')
                      ~ '(^|[ ,"])pg_stat_statements($|[ ,"])' AS pg_stat_statements_loaded,
                  pg_catalog.current_setting('data_checksums') = 'on' AS data_checksums"""
    )
    assert row is not None
    return {name: bool(row[name]) for name in FEATURES}


REPLICATION_FIELDS = (
    Field("is_standby", "boolean", "The server is a standby (pg_is_in_recovery())."),
    Field("num_wal_senders", "integer", "WAL sender processes running (pg_stat_get_wal_senders())."),
)

FEATURES_FIELDS = tuple(Field(name, "boolean", f"True when {meaning}.") for name, meaning in FEATURES.items())


METRICS: tuple[Metric, ...] = (
    Metric(
        "postgresql_version",
        "string",
        "PostgreSQL major.minor version.",
        "server_version_num",
        "15.20",
        postgresql_version,
    ),
    Metric(
        "data_volume",
        "integer",
        "Size of this database in bytes.",
        "pg_database_size(current_database())",
        65982148,
        data_volume,
    ),
    Metric(
        "replication",
        "object",
        "Whether this server is a standby, and how many WAL senders run.",
        "pg_is_in_recovery(), pg_stat_get_wal_senders()",
        {"is_standby": False, "num_wal_senders": 1},
        replication,
        fields=REPLICATION_FIELDS,
    ),
    Metric(
        "num_databases", "integer", "Databases in the cluster, templates not counted.", "pg_database", 4, num_databases
    ),
    Metric(
        "uptime_days", "integer", "Whole days since the server started.", "pg_postmaster_start_time()", 12, uptime_days
    ),
    Metric(
        "server_features",
        "object",
        "Server features switched on, as booleans (never a setting's value).",
        "current_setting() of ssl, wal_level, archive_mode, shared_preload_libraries, data_checksums",
        {
            "ssl": True,
            "wal_level_logical": False,
            "archive_mode": False,
            "pg_stat_statements_loaded": True,
            "data_checksums": False,
        },
        server_features,
        fields=FEATURES_FIELDS,
    ),
)
