from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from telemetry_collector.config import Settings
from telemetry_collector.fleet.config import FleetSettings
from telemetry_collector.geo import CountryLookup
from tests.cluster import Cluster
from tests.collector.fleet_helpers import FleetService
from tests.collector.helpers import Collector, dsn_for, run_cli

_names = itertools.count()


@pytest.fixture
def collector_dsn(cluster: Cluster) -> Iterator[str]:
    """A fresh, migrated database for the collector's storage."""
    name = f"collector_{next(_names)}"
    with cluster.database(name, extension=False):
        dsn = dsn_for(cluster, name)
        run_cli("migrate", "--dsn", dsn, "--months-back", "2")
        yield dsn


@pytest.fixture
def collector_db(collector_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(collector_dsn, autocommit=True) as conn:
        yield conn


StartCollector = Callable[..., Collector]


@pytest.fixture
def start_collector(collector_dsn: str) -> Iterator[StartCollector]:
    """start_collector(geo=..., **settings) -> a running Collector; stopped after the test."""
    started: list[Collector] = []

    def start(geo: CountryLookup | None = None, **settings: Any) -> Collector:
        defaults: dict[str, Any] = {"release_cache_seconds": 0.0, "pool_min_size": 1, "pool_max_size": 4}
        collector = Collector(Settings(dsn=collector_dsn, **{**defaults, **settings}), geo).start()
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


@pytest.fixture
def collector(start_collector: StartCollector) -> Collector:
    return start_collector()


StartVendor = Callable[..., FleetService]


@pytest.fixture
def start_vendor(collector_dsn: str) -> Iterator[StartVendor]:
    """start_vendor(**settings) -> the vendor service on loopback (no periodic roll-up); stopped after."""
    started: list[FleetService] = []

    def start(**settings: Any) -> FleetService:
        defaults: dict[str, Any] = {"rollup_every_seconds": 0.0, "pool_max_size": 2}
        service = FleetService(FleetSettings(dsn=collector_dsn, **{**defaults, **settings})).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
