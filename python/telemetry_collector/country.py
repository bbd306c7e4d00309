"""The default country lookup: the Regional Internet Registries' allocations, shipped in `iptocc`.

Why iptocc (docs/collector.md, "Country"): its wheel carries its own table,
built from the five RIRs' public delegation files (no licence terms on the
data, no account, no file to fetch), refreshed in frequent releases, typed,
and answers in well under a microsecond.  It tells the country a block is
registered to, which is what a coarse per-country count needs.

The table is part of the extension module: importing it loads it, once per
process.  `serve` builds this lookup before it forks its workers, so they
share the loaded pages.
"""

from __future__ import annotations

import iptocc


class RegistryCountry:
    """Country of an address from the RIR allocations (None for private, loopback, reserved)."""

    def country(self, address: str) -> str | None:
        code = iptocc.country_code(address)
        return code if isinstance(code, str) else None


def default_lookup() -> RegistryCountry:
    lookup = RegistryCountry()
    lookup.country("192.0.2.1")  # touch the table now, not on the first report
    return lookup
