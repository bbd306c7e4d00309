"""What the vendor knows about releases, per product, turned into the answer to one report.

The book is the release list and the end-of-life series, read together and
kept for `ttl` seconds.  For each product a report runs that the book lists
(the extension itself, PostgreSQL, extensions named in extensions.versions),
the answer's `products` says: the newest release, the newest of the installed
version's series, whether a newer release fixes security issues, whether the
series is end of life, and the release notes of the release to go to (the
protocol module documents the shape and owns the limits).  The same rules give
the vendor side its roll-up dimensions (fleet/rollup.py).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import psycopg
from packaging.version import Version

import telemetry_protocol as protocol
from telemetry_collector import releases

# Answers remembered per book: a fleet runs a handful of version combinations.
MAX_CACHED_ANSWERS = 1024


@dataclass(frozen=True)
class Listed:
    version: Version
    security: bool
    notes_url: str | None


@dataclass(frozen=True)
class Book:
    """Releases (by product, only those that parse as versions) and end-of-life series."""

    releases: dict[str, tuple[Listed, ...]] = field(default_factory=dict)
    end_of_life: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)

    def newest(self, product: str) -> Listed | None:
        """releases.newest()'s rule: the highest final release, else the highest pre-release."""
        listed = self.releases.get(product, ())
        finals = [r for r in listed if not r.version.is_prerelease]
        candidates = finals or list(listed)
        return max(candidates, key=lambda r: r.version) if candidates else None

    def advise(self, product: str, installed_text: str | None) -> protocol.ProductAdvice | None:
        """The answer's entry for `product` at `installed_text`; None when not listed or not a version."""
        newest = self.newest(product)
        installed = protocol.version_or_none(installed_text)
        if newest is None or installed is None:
            return None
        listed = self.releases[product]
        series = protocol.series_of(product, installed)
        in_series = [r for r in listed if protocol.in_series(r.version, series) and not r.version.is_prerelease]
        newest_in_series = max(in_series, key=lambda r: r.version) if in_series else None
        end_of_life = any(protocol.in_series(installed, s) for s in self.end_of_life.get(product, ()))
        fixes = [r for r in listed if r.security and not protocol.is_up_to_date(installed, r.version)]
        security_in_series = any(protocol.in_series(r.version, series) for r in fixes)
        step = protocol.advice_step(
            installed,
            newest.version,
            None if newest_in_series is None else newest_in_series.version,
            bool(fixes),
            security_in_series,
            end_of_life,
        )
        notes = next(r.notes_url for r in listed if r.version == step)
        return protocol.ProductAdvice(
            product=product,
            installed=str(installed),
            newest=str(newest.version),
            newest_in_series=None if newest_in_series is None else str(newest_in_series.version),
            security=bool(fixes),
            security_in_series=security_in_series,
            end_of_life=end_of_life,
            notes_url=notes,
        )

    def minor_lag(self, postgresql_version: str) -> int | None:
        """How many listed PostgreSQL releases of its major are newer; None when none of that major is listed."""
        installed = protocol.version_or_none(postgresql_version)
        if installed is None:
            return None
        series = protocol.series_of(protocol.PRODUCT_POSTGRESQL, installed)
        same = [
            r.version
            for r in self.releases.get(protocol.PRODUCT_POSTGRESQL, ())
            if protocol.in_series(r.version, series) and not r.version.is_prerelease
        ]
        if not same:
            return None
        return sum(1 for v in same if v > installed)

    def products(self, versions: Iterable[tuple[str, str | None]]) -> list[protocol.ProductAdvice]:
        """The answer's `products` for (product, installed version) pairs, in that order, bounded."""
        out: list[protocol.ProductAdvice] = []
        for product, installed in versions:
            advice = self.advise(product, installed)
            if advice is not None:
                out.append(advice)
            if len(out) == protocol.MAX_PRODUCTS:
                break
        return out

    def listed_products(self) -> frozenset[str]:
        return frozenset(self.releases)


def report_versions(
    extension_version: str, postgresql_version: str, extension_versions: Iterable[tuple[str, str | None]]
) -> list[tuple[str, str | None]]:
    """A report's products and versions: the extension, PostgreSQL, then extensions.versions by name."""
    fixed = (protocol.PRODUCT_SELF, protocol.PRODUCT_POSTGRESQL)
    others = sorted((name, v) for name, v in extension_versions if name not in fixed)
    return [(protocol.PRODUCT_SELF, extension_version), (protocol.PRODUCT_POSTGRESQL, postgresql_version), *others]


def extension_versions(report: dict[str, Any]) -> tuple[tuple[str, str | None], ...]:
    """A (validated) report's extensions.versions as pairs; strings or null only."""
    extensions = report.get("extensions")
    versions = extensions.get("versions") if isinstance(extensions, dict) else None
    if not isinstance(versions, dict):
        return ()
    return tuple(
        (name, v) for name, v in versions.items() if isinstance(name, str) and (v is None or isinstance(v, str))
    )


def answer(
    book: Book, extension_version: str, postgresql_version: str, extensions: Iterable[tuple[str, str | None]]
) -> dict[str, Any] | None:
    """The whole answer: releases.answer()'s two fields, unchanged, and `products`."""
    newest = book.newest(protocol.PRODUCT_SELF)
    base = releases.answer(None if newest is None else str(newest.version), extension_version)
    if base is None:
        return None
    versions = report_versions(extension_version, postgresql_version, extensions)
    return {**base, "products": [p.as_json() for p in book.products(versions)]}


def _valid_notes(url: str | None) -> str | None:
    try:
        return None if url is None else protocol.check_notes_url(url)
    except protocol.ProtocolError:
        return None


async def load_book(conn: psycopg.AsyncConnection[Any]) -> Book:
    """The book; rows written past `release add` (by hand, in SQL) that the protocol would refuse are
    left out (a product name, a version) or without their link, so that no answer carries them."""
    listed: dict[str, list[Listed]] = {}
    for release in await releases.list_releases(conn, product=None):
        try:
            version = protocol.parse_version(release.version)
            protocol.check_product_name(release.product)
        except protocol.ProtocolError:
            continue
        listed.setdefault(release.product, []).append(
            Listed(version, release.security, _valid_notes(release.notes_url))
        )
    eol: dict[str, list[tuple[int, ...]]] = {}
    for entry in await releases.list_end_of_life(conn):
        try:
            eol.setdefault(entry.product, []).append(protocol.parse_series(entry.series))
        except protocol.ProtocolError:
            continue
    return Book({k: tuple(v) for k, v in listed.items()}, {k: tuple(v) for k, v in eol.items()})


# Called with (extension_version, postgresql_version, extensions); cache_info() says what it holds.
_Answers: TypeAlias = "functools._lru_cache_wrapper[bytes | None]"


def _answers_from(book: Book) -> _Answers:
    """answer() from `book`, as JSON bytes; the MAX_CACHED_ANSWERS last asked for are remembered."""

    @functools.lru_cache(maxsize=MAX_CACHED_ANSWERS)
    def made(
        extension_version: str, postgresql_version: str, extensions: tuple[tuple[str, str | None], ...]
    ) -> bytes | None:
        found = answer(book, extension_version, postgresql_version, extensions)
        return None if found is None else json.dumps(found).encode()

    return made


class AnswerCache:
    """The book, re-read at most every `ttl` seconds (0: on every call), and answers made from it, as bytes."""

    def __init__(
        self, load: Callable[[], Awaitable[Book]], ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._book = Book()
        self._loaded_at: float | None = None
        self._answers = _answers_from(self._book)

    async def book(self) -> Book:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._ttl:
            book = await self._load()
            if book != self._book:
                self._answers = _answers_from(book)
            self._book, self._loaded_at = book, now
        return self._book

    async def answer(
        self, extension_version: str, postgresql_version: str, extensions: Iterable[tuple[str, str | None]]
    ) -> bytes | None:
        """The answer's JSON; None when there is nothing to answer with (no release, a sender's bad version)."""
        listed = (await self.book()).listed_products()
        relevant = tuple(sorted((n, v) for n, v in extensions if n in listed))
        return self._answers(extension_version, postgresql_version, relevant)


# The vendor side's roll-up dimensions (fleet/rollup.py), from the same rules as the answer.
MAX_MINOR_LAG = 10


def rollup_dimensions(book: Book, versions: dict[str, Any]) -> list[str]:
    """A report's advisory dimensions from its versions by product ("telemetry", "postgresql", extensions):
    a security fix outstanding for any product, an end-of-life series, PostgreSQL minor releases behind."""
    own = str(versions.get(protocol.PRODUCT_SELF, ""))
    postgresql = str(versions.get(protocol.PRODUCT_POSTGRESQL, ""))
    others = [(k, v) for k, v in versions.items() if isinstance(v, str)]
    advice = book.products(report_versions(own, postgresql, others))
    lag = book.minor_lag(postgresql)
    return [
        f"security:{'outstanding' if any(a.security for a in advice) else 'none'}",
        f"end_of_life:{'yes' if any(a.end_of_life for a in advice) else 'no'}",
        "postgresql_minor_lag:"
        + ("unknown" if lag is None else f"{MAX_MINOR_LAG}+" if lag >= MAX_MINOR_LAG else str(lag)),
    ]
