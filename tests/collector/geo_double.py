"""A country lookup for tests: loopback is country "ZZ" (user-assigned code)."""

from telemetry_collector.geo import StaticCountryLookup

LOOPBACK_COUNTRY = "ZZ"


def loopback() -> StaticCountryLookup:
    return StaticCountryLookup({"127.0.0.1": LOOPBACK_COUNTRY, "::1": LOOPBACK_COUNTRY})


class Leaky:
    """A lookup whose failures quote the address, as a careless plug-in's would."""

    def country(self, address: str) -> str | None:
        raise LookupError(f"no country for {address}")


def leaky() -> Leaky:
    return Leaky()
