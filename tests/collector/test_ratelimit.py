"""Rate limiting per db_uuid: 429 with Retry-After, other databases unaffected."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from telemetry_collector.listener import ConnectionCounts, ConnectionLimits, Slot
from telemetry_collector.ratelimit import NewDatabaseBudget, RateLimiter, client_key
from tests.collector.helpers import make_report


def count(conn: psycopg.Connection[Any], db_uuid: str) -> int:
    row = conn.execute("SELECT count(*) FROM collector.reports WHERE db_uuid = %s", (db_uuid,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_database_over_its_limit_gets_429(start_collector: Any, collector_db: psycopg.Connection[Any]) -> None:
    collector = start_collector(rate_limit_burst=3, rate_limit_per_hour=2)
    noisy = str(uuid.uuid4())

    statuses = [collector.post(make_report(db_uuid=noisy)).status_code for _ in range(5)]
    limited = collector.post(make_report(db_uuid=noisy))

    assert statuses == [200, 200, 200, 429, 429]
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 0 < retry_after <= 1800  # 2 an hour: a token every 30 minutes
    assert count(collector_db, noisy) == 3  # the limited ones are not stored

    quiet = str(uuid.uuid4())
    assert collector.post(make_report(db_uuid=quiet)).status_code == 200
    assert count(collector_db, quiet) == 1


def test_invalid_reports_do_not_use_up_the_limit(start_collector: Any) -> None:
    collector = start_collector(rate_limit_burst=1, rate_limit_per_hour=1)
    db = str(uuid.uuid4())
    assert collector.post(make_report(db_uuid=db, data_volume="x")).status_code == 422
    assert collector.post(make_report(db_uuid=db)).status_code == 200
    assert collector.post(make_report(db_uuid=db)).status_code == 429


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_come_back_over_time_and_idle_keys_are_forgotten() -> None:
    clock = FakeClock()
    limiter = RateLimiter(burst=2, per_hour=60, clock=clock, sweep_every=60)  # a token a minute

    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") == 60
    clock.now += 30
    assert limiter.acquire("a") == 30
    clock.now += 30
    assert limiter.acquire("a") is None
    assert limiter.acquire("b") is None
    assert len(limiter) == 2

    clock.now += 3600  # both buckets are full again: nothing to remember
    assert limiter.acquire("c") is None
    assert len(limiter) == 1


def test_the_limiter_keeps_at_most_max_keys() -> None:
    limiter = RateLimiter(burst=1, per_hour=1, max_keys=100)
    for i in range(10_000):
        assert limiter.acquire(f"db{i}") is None
    assert len(limiter) == 100
    assert limiter.acquire("db9999") == 3600  # the most recent are the ones kept


def test_the_new_database_budget_is_per_address_per_day_and_bounded_in_memory() -> None:
    clock = FakeClock()
    budget = NewDatabaseBudget(per_day=2, max_entries=10, clock=clock)
    assert [budget.allow("192.0.2.1", n) for n in (1, 2, 3, 1)] == [True, True, False, True]
    assert budget.allow("192.0.2.2", 3)  # another address has its own budget
    assert budget.allow("2001:db8::1", 7) and budget.allow("2001:db8::2", 8)
    assert not budget.allow("2001:db8::3", 9)  # one /64 is one client
    assert budget.allow(None, 10)  # no address, nothing to key on
    clock.now += 86400
    assert budget.allow("192.0.2.1", 3)  # a new day
    for i in range(100):
        budget.allow(f"198.51.100.{i}", i)
    assert budget.entries <= 10 and len(budget) <= 10
    # Only keyed hashes are held, never an address.
    assert not any(isinstance(key, str) for key in budget._addresses)


def test_an_ipv6_48_has_a_wider_budget_of_its_own() -> None:
    budget = NewDatabaseBudget(per_day=2, per_network_per_day=3)
    # One home's /48 (a /56 or /48 from its provider): each /64 has its 2, the /48 its 3 in all.
    assert [budget.allow("2001:db8:1:1::1", n) for n in (1, 2, 3)] == [True, True, False]
    assert budget.allow("2001:db8:1:2::1", 3)
    assert not budget.allow("2001:db8:1:3::1", 4)
    assert budget.allow("2001:db8:1:3::1", 1)  # a database counted already costs nothing
    assert budget.allow("[2001:db8:2::1]:443", 4)  # another /48
    assert [budget.allow(f"192.0.2.{n}", n) for n in range(1, 10)] == [True] * 9  # IPv4: no wider budget


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1:5678", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("[2001:db8::1]:443", "2001:db8::/64"),
        ("[2001:db8::1]", "2001:db8::/64"),
        ("[::ffff:192.0.2.1]:443", "192.0.2.1"),
        ("::ffff:0:192.0.2.1", "192.0.2.1"),  # SIIT (RFC 7915)
        ("::ffff:0:c000:201", "192.0.2.1"),
        ("64:ff9b:1::192.0.2.1", "192.0.2.1"),  # local-use NAT64 (RFC 8215)
        ("64:ff9b:1:ab:cd::c000:201", "192.0.2.1"),
        ("64:ff9b::192.0.2.1", "192.0.2.1"),
        ("2001:db8::1:5678", "2001:db8::/64"),  # no brackets: all of it is the address
        ("unknown", "unknown"),
    ],
)
def test_client_key_names_the_client_whatever_the_notation(address: str, key: str) -> None:
    assert client_key(address) == key


def test_connections_are_capped_per_address_and_per_ipv6_48() -> None:
    site = ConnectionCounts(ConnectionLimits(100, 2, 10.0, max_per_network=3))
    held = [Slot(site, admitted(site, f"2001:db8:1:{n}::7")) for n in (1, 1, 2)]
    assert site.admission("2001:db8:1:1::8")[1] is not None  # that /64 has its 2
    assert site.admission("2001:db8:1:3::7")[1] is not None  # another /64, but the /48 has its 3
    assert site.admission("2001:db8:2::7")[1] is None  # another /48
    assert site.admission("192.0.2.1")[1] is None
    held[0].release()
    assert site.admission("2001:db8:1:3::7")[1] is None
    for slot in held:
        slot.release()
    assert (site.open_connections, site.per_address) == (0, {})


def admitted(site: ConnectionCounts, host: str) -> tuple[str, ...]:
    keys, refusal = site.admission(host)
    assert refusal is None, host
    return keys
