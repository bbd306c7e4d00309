"""Installed extensions: which related ones are there, versions of public ones, a count of the others.

An extension's name is vocabulary only when it is on PUBLIC_EXTENSIONS: a
name a user made up for an in-house extension could say who they are.  Others
are only counted.  Versions pass through the protocol's public_version (PEP 440 public part,
else null).
"""

from __future__ import annotations

from typing import Any

import telemetry_protocol as protocol
from telemetry_extension.metrics.declaration import Context, Field, Metric

# Well-known public extensions whose presence the report tells (true/false).
RELATED_EXTENSIONS = (
    "postgis",
    "timescaledb",
    "pg_prometheus",
    "promscale",
    "timescaledb_toolkit",
    "vector",
    "pg_cron",
    "pg_stat_statements",
)

# PostgreSQL's own procedural languages and contrib modules, then widely used
# public extensions.  Add a name only if it is published (PGXN, a package
# repository, a public source tree).
PUBLIC_EXTENSIONS = (
    # languages
    "plpgsql",
    "plpython3u",
    "plperl",
    "plperlu",
    "pltcl",
    "pltclu",
    # contrib
    "adminpack",
    "amcheck",
    "autoinc",
    "bloom",
    "btree_gin",
    "btree_gist",
    "citext",
    "cube",
    "dblink",
    "dict_int",
    "dict_xsyn",
    "earthdistance",
    "file_fdw",
    "fuzzystrmatch",
    "hstore",
    "hstore_plperl",
    "hstore_plpython3u",
    "insert_username",
    "intagg",
    "intarray",
    "isn",
    "jsonb_plperl",
    "jsonb_plpython3u",
    "lo",
    "ltree",
    "ltree_plpython3u",
    "moddatetime",
    "old_snapshot",
    "pageinspect",
    "pg_buffercache",
    "pg_freespacemap",
    "pg_prewarm",
    "pg_stat_statements",
    "pg_surgery",
    "pg_trgm",
    "pg_visibility",
    "pg_walinspect",
    "pgcrypto",
    "pgrowlocks",
    "pgstattuple",
    "postgres_fdw",
    "refint",
    "seg",
    "sslinfo",
    "tablefunc",
    "tcn",
    "tsm_system_rows",
    "tsm_system_time",
    "unaccent",
    "uuid-ossp",
    "xml2",
    # public third-party extensions
    "telemetry",
    "timescaledb",
    "timescaledb_toolkit",
    "promscale",
    "pg_prometheus",
    "vector",
    "vectorscale",
    "ai",
    "postgis",
    "postgis_raster",
    "postgis_topology",
    "postgis_sfcgal",
    "postgis_tiger_geocoder",
    "address_standardizer",
    "address_standardizer_data_us",
    "pgrouting",
    "h3",
    "h3_postgis",
    "mobilitydb",
    "pg_cron",
    "pg_partman",
    "pglogical",
    "pg_repack",
    "pg_squeeze",
    "citus",
    "citus_columnar",
    "hypopg",
    "pg_hint_plan",
    "pgaudit",
    "orafce",
    "pg_qualstats",
    "pg_stat_kcache",
    "pg_wait_sampling",
    "pg_stat_monitor",
    "pg_store_plans",
    "powa",
    "rum",
    "pgroonga",
    "pg_bigm",
    "age",
    "pgtap",
    "plv8",
    "pg_ivm",
    "pgmq",
    "pg_graphql",
    "pg_jsonschema",
    "pgsodium",
    "supabase_vault",
    "pg_net",
    "http",
    "zombodb",
    "semver",
    "prefix",
    "ip4r",
    "periods",
    "temporal_tables",
    "pg_uuidv7",
    "pg_hashids",
    "pgq",
    "set_user",
    "credcheck",
    "pg_tle",
    "anon",
    "pg_duckdb",
    "pg_search",
    "pg_analytics",
    "oracle_fdw",
    "mysql_fdw",
    "tds_fdw",
    "mongo_fdw",
    "multicorn",
    "pg_show_plans",
    "pg_permissions",
    "tdigest",
    "hll",
    "topn",
    "pg_similarity",
    "pointcloud",
    "pointcloud_postgis",
    "plpgsql_check",
    "pg_auth_mon",
    "pg_failover_slots",
    "wal2json",
    "decoderbufs",
    "pg_background",
    "pg_dirtyread",
    "pg_readonly",
)


def extensions(ctx: Context) -> dict[str, Any]:
    installed = ctx.extensions
    known = sorted(name for name in installed if name in PUBLIC_EXTENSIONS)
    return {
        "versions": {name: protocol.public_version(installed[name]) for name in known},
        "num_other": len(installed) - len(known),
    }


EXTENSIONS_FIELDS = (
    Field(
        "versions.*",
        "string or null",
        "Version (PEP 440 public part, else null) of each installed extension on the allowlist "
        "telemetry_extension.metrics.extensions.PUBLIC_EXTENSIONS (see docs/metrics.md).",
    ),
    Field("num_other", "integer", "Installed extensions not on the allowlist: counted, never named."),
)


METRICS: tuple[Metric, ...] = (
    Metric(
        "related_extensions",
        "object",
        f"For each of {', '.join(RELATED_EXTENSIONS)}: whether it is installed in this database (true/false).",
        "pg_extension",
        {"postgis": True, "timescaledb": False},
        lambda ctx: {name: name in ctx.extensions for name in RELATED_EXTENSIONS},
        fields=(Field("*", "boolean", f"* is one of {', '.join(RELATED_EXTENSIONS)}."),),
    ),
    Metric(
        "extensions",
        "object",
        "Versions of installed extensions on a public allowlist; the others only counted.",
        "pg_extension",
        {"versions": {"plpgsql": "1.0", "postgis": "3.4.2"}, "num_other": 1},
        extensions,
        fields=EXTENSIONS_FIELDS,
    ),
)
