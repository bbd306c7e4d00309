"""Coarse country from a client address; the address itself is never kept.

A lookup is anything with `country(address) -> str | None`.  The default is
country.RegistryCountry (the RIR allocations shipped in iptocc); a vendor plugs
in another (e.g. a GeoLite2 reader) with `serve --geo-lookup module:factory`,
or none with `--geo-lookup none`.  Whatever a lookup returns,
only an ISO 3166-1 alpha-2 code (two ASCII letters) is kept.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)

_COUNTRY = re.compile(r"[A-Z]{2}")


@runtime_checkable
class CountryLookup(Protocol):
    def country(self, address: str) -> str | None:
        """ISO 3166-1 alpha-2 code of `address` (an IP address as text), or None."""
        ...


class NoCountry:
    """The default: no lookup, no country."""

    def country(self, address: str) -> str | None:
        return None


class StaticCountryLookup:
    """A fixed address -> country table (tests, demos, private networks)."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self._table = dict(table)

    def country(self, address: str) -> str | None:
        return self._table.get(address)


def coarse_country(lookup: CountryLookup, address: str | None) -> str | None:
    """The country to store, or None; a failing lookup never fails a report."""
    if not address:
        return None
    try:
        code = lookup.country(address)
    except Exception as exc:  # a plug-in's bug must not lose the report
        # Its class only: a plug-in's message or traceback may well quote the address.
        log.warning("country lookup failed (%s)", type(exc).__name__)
        return None
    if not isinstance(code, str):
        return None
    code = code.strip().upper()
    return code if _COUNTRY.fullmatch(code) else None


def load_lookup(spec: str) -> CountryLookup:
    """`module:name`, where name is a CountryLookup or a no-argument factory of one; `none`: no country."""
    if spec == "none":
        return NoCountry()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--geo-lookup must look like module:name, not {spec!r}")
    target = getattr(importlib.import_module(module_name), attr)
    lookup = target if isinstance(target, CountryLookup) and not isinstance(target, type) else target()
    if not isinstance(lookup, CountryLookup):
        raise TypeError(f"{spec} does not give an object with a country(address) method")
    return lookup
