"""The release list the vendor maintains, and which release counts as newest.

Ordering is PEP 440 (packaging.version.Version): 0.10.0 is newer than 0.9.0,
0.2.0rc1 is older than 0.2.0, 0.2.0.post1 is newer than 0.2.0.  "Newest" is
the highest final release (pre-, dev- and rc releases are ignored) unless the
list holds no final release at all, in which case it is the highest
prerelease: someone running 0.3.0rc1 is then not told to "upgrade" to an
older final, since 0.3.0rc1 >= 0.2.0 makes them up to date.

Each release belongs to a product: the extension itself (protocol.PRODUCT_SELF,
the default), `postgresql`, or an extension a report names in
extensions.versions; it may fix security issues and link to its release notes.
A release series (0.1: every 0.1.x; PostgreSQL 13: every 13.x) may be declared
end of life.  advisories.py turns all of it into the answer's `products`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
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
    product: str = protocol.PRODUCT_SELF
    security: bool = False
    notes_url: str | None = None


@dataclass(frozen=True)
class EndOfLife:
    product: str
    series: str
    declared_at: dt.datetime


def newest(versions: Iterable[str]) -> str | None:
    """The newest release by the rule above; None for an empty list."""
    parsed = [v for v in map(_parse_or_none, versions) if v is not None]
    finals = [v for v in parsed if not v.is_prerelease]
    candidates = finals or parsed
    return str(max(candidates)) if candidates else None


def _parse_or_none(text: str) -> Version | None:
    """Rows written past `release add` (by hand, in SQL) that are not versions are ignored."""
    return protocol.version_or_none(text)


def answer(newest_version: str | None, sender_version: str) -> dict[str, Any] | None:
    """The protocol's answer to a sender; None when there is nothing to answer with.

    With an empty release list the collector knows no newer release than the
    sender's own version, so it answers with that (up to date); a sender whose
    version is not PEP 440 then gets None (the caller answers 503).
    """
    if newest_version is not None:
        return protocol.make_answer(newest_version, sender_version)
    own = protocol.normal_version(sender_version)
    return None if own is None else {"latest_version": own, "up_to_date": True}


def canonical(version: str) -> str:
    try:
        return str(protocol.parse_version(version))
    except protocol.ProtocolError as exc:
        raise ReleaseError(str(exc)) from None


def product_name(product: str) -> str:
    try:
        return protocol.check_product_name(product)
    except protocol.ProtocolError as exc:
        raise ReleaseError(str(exc)) from None


def notes_url(url: str) -> str:
    try:
        return protocol.check_notes_url(url)
    except protocol.ProtocolError as exc:
        raise ReleaseError(str(exc)) from None


def series(text: str) -> str:
    try:
        return protocol.series_text(protocol.parse_series(text))
    except protocol.ProtocolError as exc:
        raise ReleaseError(str(exc)) from None


def _newest_first(rows: list[Release]) -> list[Release]:
    """By product name, then newest first."""
    by_version = sorted(rows, key=lambda r: _parse_or_none(r.version) or Version("0.dev0"), reverse=True)
    return sorted(by_version, key=lambda r: (r.product != protocol.PRODUCT_SELF, r.product))


async def list_releases(
    conn: psycopg.AsyncConnection[Any], product: str | None = protocol.PRODUCT_SELF
) -> list[Release]:
    """The releases of one product (None: of every product), newest first (PEP 440 order)."""
    cur = await conn.execute(
        """SELECT version, added_at, product, security, notes_url FROM collector.releases
            WHERE %(product)s::text IS NULL OR product = %(product)s""",
        {"product": product},
    )
    return _newest_first([Release(*row) for row in await cur.fetchall()])


async def list_end_of_life(conn: psycopg.AsyncConnection[Any]) -> list[EndOfLife]:
    cur = await conn.execute("SELECT product, series, declared_at FROM collector.end_of_life ORDER BY 1, 2")
    return [EndOfLife(*row) for row in await cur.fetchall()]


async def add_release(
    conn: psycopg.AsyncConnection[Any],
    version: str,
    product: str = protocol.PRODUCT_SELF,
    security: bool = False,
    notes: str | None = None,
) -> str:
    """Add a release; its canonical spelling (0.2 and 0.2.0 are one release of a product)."""
    text = canonical(version)
    wanted = Version(text)
    product = product_name(product)
    notes = None if notes is None else notes_url(notes)
    async with conn.transaction():
        await conn.execute("LOCK TABLE collector.releases IN SHARE ROW EXCLUSIVE MODE")
        for release in await list_releases(conn, product):
            if _parse_or_none(release.version) == wanted:
                raise ReleaseError(f"release {release.version} of {product} is already listed")
        await conn.execute(
            "INSERT INTO collector.releases (version, product, security, notes_url) VALUES (%s, %s, %s, %s)",
            (text, product, security, notes),
        )
    return text


async def remove_release(conn: psycopg.AsyncConnection[Any], version: str, product: str = protocol.PRODUCT_SELF) -> str:
    wanted = Version(canonical(version))
    async with conn.transaction():
        await conn.execute("LOCK TABLE collector.releases IN SHARE ROW EXCLUSIVE MODE")
        for release in await list_releases(conn, product):
            if _parse_or_none(release.version) == wanted:
                await conn.execute(
                    "DELETE FROM collector.releases WHERE product = %s AND version = %s", (product, release.version)
                )
                return release.version
    raise ReleaseError(f"release {version} of {product} is not listed")


async def declare_end_of_life(
    conn: psycopg.AsyncConnection[Any], series_text: str, product: str = protocol.PRODUCT_SELF, withdraw: bool = False
) -> str:
    """Declare a release series end of life (or withdraw that); the series' canonical spelling."""
    text = series(series_text)
    product = product_name(product)
    if withdraw:
        cur = await conn.execute(
            "DELETE FROM collector.end_of_life WHERE product = %s AND series = %s", (product, text)
        )
        if cur.rowcount == 0:
            raise ReleaseError(f"series {text} of {product} is not declared end of life")
        return text
    cur = await conn.execute(
        "INSERT INTO collector.end_of_life (product, series) VALUES (%s, %s) ON CONFLICT DO NOTHING", (product, text)
    )
    if cur.rowcount == 0:
        raise ReleaseError(f"series {text} of {product} is already end of life")
    return text
