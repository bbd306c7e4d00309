"""The release list the vendor maintains, and which release counts as newest.

Ordering is PEP 440 (packaging.version.Version): 0.10.0 is newer than 0.9.0,
0.2.0rc1 is older than 0.2.0, 0.2.0.post1 is newer than 0.2.0.  "Newest" is
the highest final release (pre-, dev- and rc releases are ignored) unless the
list holds no final release at all, in which case it is the highest
prerelease: someone running 0.3.0rc1 is then not told to "upgrade" to an
older final, since 0.3.0rc1 >= 0.2.0 makes them up to date.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from packaging.version import Version

import telemetry_protocol as protocol


class ReleaseError(ValueError):
    pass


@dataclass(frozen=True)
class Release:
    version: str
    added_at: dt.datetime


def newest(versions: Iterable[str]) -> str | None:
    """The newest release by the rule above; None for an empty list."""
    parsed = [v for v in map(_parse_or_none, versions) if v is not None]
    finals = [v for v in parsed if not v.is_prerelease]
    candidates = finals or parsed
    return str(max(candidates)) if candidates else None


def _parse_or_none(text: str) -> Version | None:
    """Rows written past `release add` (by hand, in SQL) that are not versions are ignored."""
    try:
        return protocol.parse_version(text)
    except protocol.ProtocolError:
        return None


def answer(newest_version: str | None, sender_version: str) -> dict[str, Any] | None:
    """The protocol's answer to a sender; None when there is nothing to answer with.

    With an empty release list the collector knows no newer release than the
    sender's own version, so it answers with that (up to date); a sender whose
    version is not PEP 440 then gets None (the caller answers 503).
    """
    if newest_version is not None:
        return protocol.make_answer(newest_version, sender_version)
    try:
        own = protocol.parse_version(sender_version)
    except protocol.ProtocolError:
        return None
    return {"latest_version": str(own), "up_to_date": True}


def canonical(version: str) -> str:
    try:
        return str(protocol.parse_version(version))
    except protocol.ProtocolError as exc:
        raise ReleaseError(str(exc)) from None


async def list_releases(conn: psycopg.AsyncConnection[Any]) -> list[Release]:
    """All releases, newest first (PEP 440 order)."""
    cur = await conn.execute("SELECT version, added_at FROM collector.releases")
    rows = [Release(v, added) for v, added in await cur.fetchall()]
    return sorted(rows, key=lambda r: _parse_or_none(r.version) or Version("0.dev0"), reverse=True)


async def add_release(conn: psycopg.AsyncConnection[Any], version: str) -> str:
    """Add a release; its canonical spelling (0.2 and 0.2.0 are one release)."""
    text = canonical(version)
    wanted = Version(text)
    async with conn.transaction():
        await conn.execute("LOCK TABLE collector.releases IN SHARE ROW EXCLUSIVE MODE")
        for release in await list_releases(conn):
            if _parse_or_none(release.version) == wanted:
                raise ReleaseError(f"release {release.version} is already listed")
        await conn.execute("INSERT INTO collector.releases (version) VALUES (%s)", (text,))
    return text


async def remove_release(conn: psycopg.AsyncConnection[Any], version: str) -> str:
    wanted = Version(canonical(version))
    async with conn.transaction():
        await conn.execute("LOCK TABLE collector.releases IN SHARE ROW EXCLUSIVE MODE")
        for release in await list_releases(conn):
            if _parse_or_none(release.version) == wanted:
                await conn.execute("DELETE FROM collector.releases WHERE version = %s", (release.version,))
                return release.version
    raise ReleaseError(f"release {version} is not listed")


class NewestCache:
    """The newest release, re-read at most every `ttl` seconds (0: on every call)."""

    def __init__(
        self,
        load: Callable[[], Awaitable[list[str]]],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._value: str | None = None
        self._loaded_at: float | None = None

    async def get(self) -> str | None:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._ttl:
            self._value = newest(await self._load())
            self._loaded_at = now
        return self._value
