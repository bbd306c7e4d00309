"""The country by default: the RIR table shipped in iptocc, from the address a trusted proxy forwards.

Only the two-letter code is kept; it becomes the roll-up's `country` dimension and the fleet page's panel.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import psycopg
import pytest

from telemetry_collector.country import RegistryCountry
from telemetry_collector.geo import NoCountry, coarse_country, load_lookup
from tests.collector.fleet_helpers import roll_up
from tests.collector.helpers import make_report
from tests.collector.test_privacy import everything_stored

# Registry allocations that do not move: APNIC's 1.0.16.0/20 (JP), RIPE NCC's own 193.0.0.0/21 (NL),
# and ARIN's 8.8.8.0/24 (US); loopback, private and documentation ranges have no country.
PUBLIC = {"1.0.16.1": "JP", "193.0.6.139": "NL", "8.8.8.8": "US"}


def test_the_default_lookup_knows_public_addresses_only() -> None:
    lookup = RegistryCountry()
    assert {address: coarse_country(lookup, address) for address in PUBLIC} == PUBLIC
    for address in ("127.0.0.1", "::1", "10.1.2.3", "192.168.0.1", "192.0.2.1", "2001:db8::1", "not an address"):
        assert coarse_country(lookup, address) is None, address
    assert isinstance(load_lookup("none"), NoCountry)


def test_a_public_address_through_the_trusted_proxy_stores_its_country(
    start_collector: Any,
    collector_dsn: str,
    collector_db: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The proxy on loopback appends the client's address; an earlier entry is the client's own claim.
    proxied = start_collector(trust_x_forwarded_for=True)
    sent = []
    for address, _ in PUBLIC.items():
        report = make_report()
        headers = {"X-Forwarded-For": f"10.9.9.9, {address}"}
        assert proxied.post(report, headers=headers).status_code == 200
        sent.append(report["db_uuid"])
    direct = start_collector()  # no proxy trusted: the header is the client's and ignored; loopback has none
    spoofed = make_report()
    assert direct.post(spoofed, headers={"X-Forwarded-For": "1.0.16.1"}).status_code == 200

    stored = dict(collector_db.execute("SELECT db_uuid::text, country FROM collector.reports").fetchall())
    assert [stored[u] for u in sent] == list(PUBLIC.values())
    assert stored[spoofed["db_uuid"]] is None

    # A roll-up dimension, shown on the fleet page: counts by code, "unknown" for none.
    roll_up(collector_dsn, until=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    latest = collector_db.execute(
        "SELECT value, sum(databases)::int FROM collector.rollup_latest WHERE dimension = 'country' GROUP BY 1"
    ).fetchall()
    assert dict(latest) == {"JP": 1, "NL": 1, "US": 1, "unknown": 1}

    # The addresses went nowhere: no table, no log line.
    rows = everything_stored(collector_db)
    logged = [record.getMessage() for record in caplog.records]
    for address in [*PUBLIC, "10.9.9.9"]:
        assert not any(address in row for row in rows), address
        assert not any(address in line for line in logged), address
