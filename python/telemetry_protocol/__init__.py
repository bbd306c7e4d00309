"""The wire protocol between the extension and a collector; shared by both sides.

Installed with the extension (beside `telemetry_extension`) and with the
collector; it imports nothing of either.

Request: POST <endpoint>, Content-Type application/json, User-Agent
"telemetry-extension/<version>", body = the report exactly as get_report()
shows it (a JSON object, keys in docs/report-fields.md), at most
MAX_REPORT_BYTES.

Answer: 200 with a JSON object:
    {"latest_version": "0.2.0", "up_to_date": false}
`latest_version` (required) is the newest release, a PEP 440 public version;
`up_to_date` (optional) is the collector's verdict for the sender.  The
extension trusts its own comparison first and records the collector's.
Any other status is a failure; 429 and 503 may carry Retry-After, in seconds
or as an HTTP-date: the sender waits that long (at least its own back-off),
up to MAX_RETRY_AFTER_SECONDS (7 days), never more.

Up to date (`is_up_to_date`, the one rule for both sides): versions compare as
releases (0.10.0 after 0.9.0).  A pre-release (a, b, rc, dev) as the newest
does not make a final release out of date: a DBA running 0.2.0 is not told
about 0.3.0rc1.  A DBA running a pre-release is told of any newer version,
final or pre-release (0.3.0rc1 -> 0.3.0rc2 or 0.3.0).
"""

from __future__ import annotations

import json
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

# The report's own format: report_format_version in every report.
REPORT_FORMAT_VERSION = 1

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


def parse_version(text: Any) -> Version:
    """A release version, or ProtocolError: only PEP 440 public versions count."""
    if not isinstance(text, str) or not text or len(text) > MAX_VERSION_LENGTH:
        raise ProtocolError("version must be a non-empty string of at most 64 characters")
    try:
        version = Version(text)
    except InvalidVersion as exc:
        raise ProtocolError(f"invalid version string: {text[:MAX_VERSION_LENGTH]!r}") from exc
    if version.local is not None:
        raise ProtocolError("version must not carry a local part (+...)")
    return version


@dataclass(frozen=True)
class VersionAnswer:
    latest_version: str
    up_to_date: bool | None


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
    return VersionAnswer(str(latest), up_to_date)


def is_up_to_date(installed: Version, latest: Version) -> bool:
    """False only when `latest` is newer and, for a final `installed`, itself a final release."""
    if installed >= latest:
        return True
    return latest.is_prerelease and not installed.is_prerelease


def make_answer(latest_version: str, sender_version: str) -> dict[str, Any]:
    """What a collector answers a sender running `sender_version`."""
    latest = parse_version(latest_version)
    try:
        current = is_up_to_date(parse_version(sender_version), latest)
    except ProtocolError:
        current = False
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
