"""Per-client limits, held in memory only and bounded in memory; nothing here is ever stored.

RateLimiter: a token bucket per db_uuid.  A database reports once a day and
retries on failure, so the default allows a burst of 10 and 10 more per hour.
Keys whose bucket has refilled are dropped in periodic sweeps, and at most
`max_keys` buckets are kept (the least recently used goes first: a database
evicted that way gets a fresh burst, which is harmless).

NewDatabaseBudget: how many distinct db_uuids one source address may report
per UTC day.  It bounds what one client can do to the fleet numbers by
inventing databases (see docs/collector.md).  The address is only ever held as
a keyed hash (HMAC-SHA256 under a key drawn at start-up and never written
anywhere), keyed by client_key(): an IPv4 address whatever its notation, an
IPv6 address by its /64 (what one host usually holds); an IPv6 /48 (network_key)
has a second, wider budget, since one home is often given a /56 or /48.
The state is per process; see docs/collector.md for running several.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

# IPv6 prefixes whose last 32 bits are an IPv4 address: NAT64's well-known prefix (RFC 6052), the
# local-use NAT64 prefix (RFC 8215, its /96 format), SIIT's IPv4-translated addresses (RFC 7915).
_IPV4_IN_LAST_32_BITS = tuple(
    ipaddress.ip_network(prefix) for prefix in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96")
)
# ::/96 minus :: and ::1 is IPv4-compatible (RFC 4291, deprecated, still parsed by proxies).
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# What one home or small site is usually given (RFC 6177): the wider cap's unit.
NETWORK_PREFIX = 48
_IPV4_WITH_PORT = re.compile(r"^([0-9.]+):[0-9]{1,5}$")
_IPV6_BRACKETED = re.compile(r"^\[([^\]]+)\](?::[0-9]{1,5})?$")


def without_port(address: str) -> str:
    """`address` without a port some proxies append: 192.0.2.1:5678 and [2001:db8::1]:443 (or
    [2001:db8::1]) give the address alone; anything else is returned stripped of spaces."""
    text = address.strip()
    bracketed = _IPV6_BRACKETED.match(text)
    if bracketed:
        return bracketed.group(1)
    with_port = _IPV4_WITH_PORT.match(text)
    return with_port.group(1) if with_port else text


def _client_ip(address: str) -> tuple[ipaddress.IPv4Address | None, ipaddress.IPv6Address | None]:
    """The IPv4 address `address` stands for (any notation), else its IPv6 address (no zone)."""
    try:
        ip = ipaddress.ip_address(without_port(address))
    except ValueError:
        return None, None
    if isinstance(ip, ipaddress.IPv4Address):
        return ip, None
    ip = ipaddress.IPv6Address(int(ip))  # without a zone (%eth0)
    embedded = ip.ipv4_mapped or ip.sixtofour
    if embedded is None and (
        any(ip in prefix for prefix in _IPV4_IN_LAST_32_BITS) or (ip in _IPV4_COMPATIBLE and int(ip) > 1)
    ):
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return (embedded, None) if embedded is not None else (None, ip)


def client_key(address: str) -> str:
    """The client an address stands for: its IPv4 address in any notation (plain, with a port,
    IPv4-mapped ::ffff:a.b.c.d, SIIT ::ffff:0:a.b.c.d, IPv4-compatible ::a.b.c.d, 6to4
    2002:a.b.c.d::/48, NAT64 64:ff9b::a.b.c.d and 64:ff9b:1::/48), otherwise an IPv6 address's /64;
    text that is no address stands for itself."""
    ipv4, ipv6 = _client_ip(address)
    if ipv4 is not None:
        return str(ipv4)
    if ipv6 is not None:
        return str(ipaddress.IPv6Network((int(ipv6) >> 64 << 64, 64)))
    return address


def network_key(address: str) -> str | None:
    """The wider network an IPv6 client's /64 belongs to (its /48), for the second, wider cap;
    None for an IPv4 client or text that is no address."""
    _, ipv6 = _client_ip(address)
    if ipv6 is None:
        return None
    shift = 128 - NETWORK_PREFIX
    return str(ipaddress.IPv6Network((int(ipv6) >> shift << shift, NETWORK_PREFIX)))


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        burst: int,
        per_hour: float,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: float = 60.0,
        max_keys: int = 100_000,
    ) -> None:
        if burst < 1 or per_hour <= 0 or max_keys < 1:
            raise ValueError("rate limit needs burst >= 1, per_hour > 0 and max_keys >= 1")
        self.burst = float(burst)
        self.rate = per_hour / 3600.0  # tokens per second
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._sweep_every = sweep_every
        self._last_sweep = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str) -> int | None:
        """None if `key` may go on, else the whole seconds until it may (Retry-After)."""
        now = self._clock()
        if now - self._last_sweep >= self._sweep_every:
            self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            self._buckets[key] = _Bucket(self.burst - 1.0, now)
            return None
        self._buckets.move_to_end(key)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full_after]:
            del self._buckets[key]
        self._last_sweep = now


@dataclass
class _Seen:
    day: int
    databases: set[int] = field(default_factory=set)


class NewDatabaseBudget:
    """At most `per_day` distinct db_uuids per source address and UTC day, and `per_network_per_day`
    per IPv6 /48 (network_key: a home or site given a /48 or /56 holds many /64s).

    Memory is bounded by `max_entries` db_uuids over all keys (about 100
    bytes each); past it the least recently seen keys are forgotten first.
    """

    def __init__(
        self,
        per_day: int,
        max_entries: int = 1_000_000,
        clock: Callable[[], float] = time.time,
        per_network_per_day: int | None = None,
    ) -> None:
        per_network = 4 * per_day if per_network_per_day is None else per_network_per_day
        if per_day < 1 or per_network < 1 or max_entries < max(per_day, per_network):
            raise ValueError("the budget needs per_day >= 1, per_network_per_day >= 1 and max_entries above both")
        self.per_day = per_day
        self.per_network_per_day = per_network
        self.max_entries = max_entries
        self._clock = clock
        self._key = os.urandom(32)  # never written anywhere: the hashes cannot be reversed by a dictionary
        self._addresses: OrderedDict[bytes, _Seen] = OrderedDict()
        self._entries = 0

    def __len__(self) -> int:
        return len(self._addresses)

    @property
    def entries(self) -> int:
        return self._entries

    def _hash(self, key: str) -> bytes:
        return hmac.new(self._key, key.encode(), hashlib.sha256).digest()[:16]

    def _seen(self, key: bytes, day: int) -> _Seen:
        seen = self._addresses.get(key)
        if seen is None or seen.day != day:
            if seen is not None:
                self._entries -= len(seen.databases)
            seen = _Seen(day)
            self._addresses[key] = seen
        self._addresses.move_to_end(key)
        return seen

    def allow(self, address: str | None, db_uuid: int) -> bool:
        """True if `db_uuid` may be reported from `address` today (it counts against the budgets once)."""
        if address is None:
            return True  # no address (a Unix socket): nothing to key on
        day = int(self._clock() // 86400)
        network = network_key(address)
        limits = [(self._seen(self._hash(client_key(address)), day), self.per_day)]
        if network is not None:
            limits.append((self._seen(self._hash(network), day), self.per_network_per_day))
        if any(db_uuid not in seen.databases and len(seen.databases) >= limit for seen, limit in limits):
            return False
        for seen, _ in limits:
            if db_uuid not in seen.databases:
                seen.databases.add(db_uuid)
                self._entries += 1
        while self._entries > self.max_entries:
            _, evicted = self._addresses.popitem(last=False)
            self._entries -= len(evicted.databases)
        return True
