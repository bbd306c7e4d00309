"""The wire protocol between the extension and a collector; shared by both sides.

Installed with the extension (beside `telemetry_extension`) and with the
collector; it imports nothing of either.

Request: POST <endpoint>, Content-Type application/json, User-Agent
"telemetry-extension/<version>", body = the report exactly as get_report()
shows it (a JSON object, keys in docs/report-fields.md), at most
MAX_REPORT_BYTES.

Answer: 200 with a JSON object:
    {"latest_version": "0.2.0", "up_to_date": false, "products": [...]}
`latest_version` (required) is the newest release, a PEP 440 public version;
`up_to_date` (optional) is the collector's verdict for the sender.  The
extension trusts its own comparison first and records the collector's.
`products` (optional; collectors before 0.3.0 leave it out, and senders before
0.3.0 ignore it) holds, for each product the sender runs that the vendor lists
releases of (PRODUCT_SELF, PRODUCT_POSTGRESQL, or an extension named in the
report's extensions.versions), at most MAX_PRODUCTS objects:
    {"product": "postgresql", "installed": "15.8", "newest": "18.1",
     "newest_in_series": "15.21", "security": true, "security_in_series": true,
     "end_of_life": false, "notes_url": "https://www.postgresql.org/docs/release/15.21/"}
`installed` is the version the report carried; `newest` the newest release;
`newest_in_series` the newest release of the installed version's series
(series_of: the major for PostgreSQL, major.minor for the rest), null when the
vendor lists none; `security` whether a release newer than `installed` fixes
security issues, `security_in_series` whether one of its own series does (then
the newest of the series is a step that takes the fix); `end_of_life` whether
the vendor declared the installed version's series end of life; `notes_url`
(https, or null) the release notes of the release to go to (advice_step).  One bad entry makes the whole answer invalid.
Any other status is a failure; 429 and 503 may carry Retry-After, in seconds
or as an HTTP-date: the sender waits that long (at least its own back-off),
up to MAX_RETRY_AFTER_SECONDS (7 days), never more.

Up to date (`is_up_to_date`, the one rule for both sides): versions compare as
releases (0.10.0 after 0.9.0).  A pre-release (a, b, rc, dev) as the newest
does not make a final release out of date: a DBA running 0.2.0 is not told
about 0.3.0rc1.  A DBA running a pre-release is told of any newer version,
final or pre-release (0.3.0rc1 -> 0.3.0rc2 or 0.3.0).

Versions are read here for both sides, by one parser (packaging's PEP 440):
parse_version (a release version or ProtocolError), version_or_none,
normal_version (PEP 440's normal form) and public_version (what a sender may
report of a version it finds, a local part dropped).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

CONTENT_TYPE = "application/json"
USER_AGENT_PRODUCT = "telemetry-extension"
MAX_ANSWER_BYTES = 64 * 1024
# Arrays and objects inside one another in an answer: its own are one deep.
# Deeper is refused before parsing, which would recurse once per level.
MAX_ANSWER_DEPTH = 16
# The largest report a collector accepts (its default body limit); the
# extension refuses to send a larger one.
MAX_REPORT_BYTES = 64 * 1024
MAX_VERSION_LENGTH = 64
# The longest Retry-After a sender honours; a longer one is cut to this.
MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600

# The answer's `products`: how many, and each string's shape.
PRODUCT_SELF = "telemetry"
PRODUCT_POSTGRESQL = "postgresql"
MAX_PRODUCTS = 64
PRODUCT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
MAX_NOTES_URL_LENGTH = 512
# https, a host, then only the characters RFC 3986 allows: no space, no control character.
NOTES_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/?#-]*)?")
PRODUCT_KEYS = frozenset(
    {"product", "installed", "newest", "newest_in_series", "security", "security_in_series", "end_of_life", "notes_url"}
)

# The report's own format: report_format_version in every report.
REPORT_FORMAT_VERSION = 1

# install_method is vocabulary, not free text: a packager's typo must not become a string that
# leaves the database.  A sender reports a method outside it as "other"; a collector counts it so.
INSTALL_METHODS = ("source", "deb", "rpm", "docker", "homebrew", "windows", "cloud", "other")

# The largest magnitude of a number in a report: every JSON reader (JavaScript's too) holds
# integers up to 2**53 - 1 exactly; beyond, they do not survive a round trip.
MAX_SAFE_INTEGER = 2**53 - 1

# What a collector needs to store a report; the extension's report carries more.
# JSON types as Python types (bool is checked apart from int).
REQUIRED_REPORT_FIELDS: dict[str, type] = {
    "report_format_version": int,
    "db_uuid": str,
    "exported_db_uuid": str,
    "installed_time": str,
    "extension_version": str,
    "postgresql_version": str,
    "os_name": str,
    "install_method": str,
    "data_volume": int,
    "related_extensions": dict,
}


class ProtocolError(ValueError):
    """An answer or report that does not follow this protocol."""


def check_report_size(body: bytes) -> None:
    """ProtocolError when a report is larger than a collector accepts."""
    if len(body) > MAX_REPORT_BYTES:
        raise ProtocolError(f"report of {len(body)} bytes is larger than the protocol's {MAX_REPORT_BYTES}")


def user_agent(extension_version: str) -> str:
    return f"{USER_AGENT_PRODUCT}/{extension_version}"


def _pep440(text: str) -> Version | None:
    """PEP 440's reading of `text` (packaging's), any form; None when it is no version.  The one parser."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def parse_version(text: Any) -> Version:
    """A release version, or ProtocolError: only PEP 440 public versions count."""
    if not isinstance(text, str) or not text or len(text) > MAX_VERSION_LENGTH:
        raise ProtocolError("version must be a non-empty string of at most 64 characters")
    version = _pep440(text)
    if version is None:
        raise ProtocolError(f"invalid version string: {text[:MAX_VERSION_LENGTH]!r}")
    if version.local is not None:
        raise ProtocolError("version must not carry a local part (+...)")
    return version


def version_or_none(text: Any) -> Version | None:
    """parse_version, with None for what is no release version."""
    try:
        return parse_version(text)
    except ProtocolError:
        return None


def normal_version(text: Any) -> str | None:
    """A release version in PEP 440's normal form (" v0.2 " is "0.2"), else None."""
    version = version_or_none(text)
    return None if version is None else str(version)


def public_version(text: str | None) -> str | None:
    """A version as a sender may report it: its PEP 440 public part in normal form (a local
    part "+..." dropped), else None."""
    version = None if text is None else _pep440(text)
    return None if version is None else version.public


def check_product_name(text: Any) -> str:
    if not isinstance(text, str) or PRODUCT_NAME.fullmatch(text) is None:
        raise ProtocolError("product must be a lowercase name of at most 63 characters ([a-z0-9_-])")
    return text


def check_notes_url(text: Any) -> str:
    """A release-notes link as the protocol allows it: https, at most 512 printable characters."""
    if not isinstance(text, str) or len(text) > MAX_NOTES_URL_LENGTH or NOTES_URL.fullmatch(text) is None:
        raise ProtocolError(f"notes_url must be an https URL of at most {MAX_NOTES_URL_LENGTH} characters")
    return text


def series_of(product: str, version: Version) -> tuple[int, ...]:
    """The release series a version belongs to: the major for PostgreSQL 10 and later
    (15.8 is in 15), major.minor otherwise (0.2.3 is in 0.2; PostgreSQL 9.6.2 in 9.6)."""
    if product == PRODUCT_POSTGRESQL and version.release[0] >= 10:
        return version.release[:1]
    return (*version.release, 0)[:2]


def series_text(series: tuple[int, ...]) -> str:
    return ".".join(map(str, series))


def parse_series(text: Any) -> tuple[int, ...]:
    """A series as the vendor declares it: one to three numbers with dots (0.1, 13)."""
    if not isinstance(text, str) or re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,6}){0,2}", text) is None:
        raise ProtocolError("a series is one to three numbers with dots, e.g. 0.1 or 13")
    return tuple(int(part) for part in text.split("."))


def in_series(version: Version, series: tuple[int, ...]) -> bool:
    """Whether `version` is in `series` (0.1.4 in 0.1, 13.2 in 13; 0.10.0 not in 0.1)."""
    return (version.release + (0,) * len(series))[: len(series)] == series


@dataclass(frozen=True)
class ProductAdvice:
    """One entry of an answer's `products`."""

    product: str
    installed: str
    newest: str
    newest_in_series: str | None
    security: bool
    security_in_series: bool
    end_of_life: bool
    notes_url: str | None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def advice_step(
    installed: Version,
    newest: Version,
    newest_in_series: Version | None,
    security: bool,
    security_in_series: bool,
    end_of_life: bool,
) -> Version:
    """The release to go to, the one rule for both sides: the newest of the installed series when it is
    newer, the series is supported, and (with a security fix outstanding) the series has the fix; else
    the newest release."""
    if newest_in_series is None or newest_in_series <= installed or end_of_life:
        return newest
    if security and not security_in_series:
        return newest
    return newest_in_series


def _exact_version(text: Any) -> str:
    """parse_version, and nothing around it: Version() would forgive surrounding whitespace."""
    if isinstance(text, str) and text != text.strip():
        raise ProtocolError("version must not carry whitespace")
    return str(parse_version(text))


def parse_product(entry: Any) -> ProductAdvice:
    if not isinstance(entry, dict):
        raise ProtocolError("each entry of products must be a JSON object")
    unknown = set(entry) - PRODUCT_KEYS
    if unknown:
        raise ProtocolError(f"unknown key in products: {sorted(unknown)[0][:MAX_VERSION_LENGTH]!r}")
    in_series_text = entry.get("newest_in_series")
    notes = entry.get("notes_url")
    for flag in ("security", "security_in_series", "end_of_life"):
        if not isinstance(entry.get(flag), bool):
            raise ProtocolError(f"{flag} must be a boolean")
    return ProductAdvice(
        product=check_product_name(entry.get("product")),
        installed=_exact_version(entry.get("installed")),
        newest=_exact_version(entry.get("newest")),
        newest_in_series=None if in_series_text is None else _exact_version(in_series_text),
        security=entry["security"],
        security_in_series=entry["security_in_series"],
        end_of_life=entry["end_of_life"],
        notes_url=None if notes is None else check_notes_url(notes),
    )


def parse_products(value: Any) -> tuple[ProductAdvice, ...] | None:
    """An answer's `products`: None when absent (a collector before 0.3.0), else every entry valid."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ProtocolError("products must be a JSON array")
    if len(value) > MAX_PRODUCTS:
        raise ProtocolError(f"products lists {len(value)} entries; at most {MAX_PRODUCTS}")
    products = tuple(parse_product(entry) for entry in value)
    names = [p.product for p in products]
    if len(set(names)) != len(names):
        raise ProtocolError("products names a product twice")
    return products


@dataclass(frozen=True)
class VersionAnswer:
    latest_version: str
    up_to_date: bool | None
    # None: the answer has no `products` (a collector before 0.3.0).
    products: tuple[ProductAdvice, ...] | None = None


def nesting_depth(text: bytes) -> int:
    """How deep arrays and objects nest in JSON text (brackets inside strings do not count), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def parse_answer(body: bytes) -> VersionAnswer:
    if nesting_depth(body) > MAX_ANSWER_DEPTH:
        raise ProtocolError(f"answer nests arrays or objects deeper than {MAX_ANSWER_DEPTH} levels")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("answer is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError("answer is not a JSON object")
    latest = parse_version(data.get("latest_version"))
    up_to_date = data.get("up_to_date")
    if up_to_date is not None and not isinstance(up_to_date, bool):
        raise ProtocolError("up_to_date must be a boolean")
    return VersionAnswer(str(latest), up_to_date, parse_products(data.get("products")))


def is_up_to_date(installed: Version, latest: Version) -> bool:
    """False only when `latest` is newer and, for a final `installed`, itself a final release."""
    if installed >= latest:
        return True
    return latest.is_prerelease and not installed.is_prerelease


def make_answer(latest_version: str, sender_version: str) -> dict[str, Any]:
    """What a collector answers a sender running `sender_version`."""
    latest = parse_version(latest_version)
    sender = version_or_none(sender_version)
    current = sender is not None and is_up_to_date(sender, latest)
    return {"latest_version": str(latest), "up_to_date": current}


def validate_report(report: Any) -> dict[str, Any]:
    """The report as a dict, or ProtocolError naming the first problem."""
    if not isinstance(report, dict):
        raise ProtocolError("report must be a JSON object")
    for key, expected in REQUIRED_REPORT_FIELDS.items():
        if key not in report:
            raise ProtocolError(f"missing key: {key}")
        value = report[key]
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise ProtocolError(f"wrong type for {key}: expected {expected.__name__}")
    return report
