"""The client's address is never stored: at most a coarse country, from the default lookup or a plugged-in one."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import pytest

from telemetry_collector.geo import (
    NoCountry,
    StaticCountryLookup,
    coarse_country,
    load_lookup,
)
from tests.collector.geo_double import LOOPBACK_COUNTRY, loopback
from tests.collector.helpers import make_report

ADDRESSES = ("127.0.0.1", "::1", "localhost")


def everything_stored(conn: psycopg.Connection[Any]) -> list[str]:
    """Every row of every table of the collector's database, as text."""
    tables = conn.execute(
        """SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"""
    ).fetchall()
    assert len(tables) >= 4  # reports, its partitions, releases, schema_migrations
    rows: list[str] = []
    for (table,) in tables:
        rows += [r[0] for r in conn.execute(f"SELECT t::text FROM {table} AS t").fetchall()]
    return rows


def test_only_a_country_is_kept_and_never_the_address(
    start_collector: Any, collector_db: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    collector = start_collector(geo=loopback())
    report = make_report()

    response = collector.post(report)

    assert response.status_code == 200
    assert collector_db.execute("SELECT country FROM collector.reports").fetchall() == [(LOOPBACK_COUNTRY,)]
    rows = everything_stored(collector_db)
    assert any(report["db_uuid"] in row for row in rows)
    for address in ADDRESSES:
        assert not any(address in row for row in rows), address
    columns = collector_db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'collector'"
    ).fetchall()
    assert not [c for (c,) in columns if "ip" in c.split("_") or "addr" in c or "remote" in c]
    # Nor does the access log keep it.
    access = [r.getMessage() for r in caplog.records if r.name == "telemetry_collector.access"]
    assert any(line.startswith("POST /v1/report 200 ") for line in access)
    assert not any(address in line for line in access for address in ADDRESSES)


def test_loopback_has_no_country_and_its_address_is_not_stored(
    collector: Any, collector_db: psycopg.Connection[Any]
) -> None:
    assert collector.post(make_report()).status_code == 200
    assert collector_db.execute("SELECT country FROM collector.reports").fetchall() == [(None,)]
    assert not any("127.0.0.1" in row for row in everything_stored(collector_db))


def test_lookups_plug_in_by_name_and_only_country_codes_pass() -> None:
    lookup = load_lookup("tests.collector.geo_double:loopback")
    assert coarse_country(lookup, "127.0.0.1") == "ZZ"
    assert coarse_country(lookup, "192.0.2.1") is None
    assert coarse_country(NoCountry(), "127.0.0.1") is None
    odd = StaticCountryLookup({"a": "de", "b": "Berlin, DE", "c": "127.0.0.1"})
    assert [coarse_country(odd, k) for k in "abc"] == ["DE", None, None]

    class Broken:
        def country(self, address: str) -> str | None:
            raise OSError("database file missing")

    assert coarse_country(Broken(), "127.0.0.1") is None
    with pytest.raises(ValueError):
        load_lookup("no-colon")


def test_behind_a_trusted_proxy_the_forwarded_address_gives_the_country(
    start_collector: Any, collector_db: psycopg.Connection[Any]
) -> None:
    geo = StaticCountryLookup({"198.51.100.7": "NL"})
    spoofed = {"X-Forwarded-For": "10.0.0.1, 198.51.100.7"}
    direct = start_collector(geo=geo)
    assert direct.post(make_report(), headers=spoofed).status_code == 200  # header ignored: no proxy trusted
    proxied = start_collector(geo=geo, trust_x_forwarded_for=True)
    assert proxied.post(make_report(), headers=spoofed).status_code == 200

    countries = collector_db.execute("SELECT country FROM collector.reports ORDER BY received_at").fetchall()
    assert countries == [(None,), ("NL",)]
    rows = everything_stored(collector_db)
    assert not any("198.51.100.7" in row or "10.0.0.1" in row for row in rows)
