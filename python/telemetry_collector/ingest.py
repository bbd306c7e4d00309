"""Turning a request body into a report fit to store, or a clear 4xx.

400: not UTF-8 JSON, or not a JSON object.  413: larger than the limit (read
with a cap, never buffered whole).  415: not application/json.  422: a JSON
object that lacks a required key or has a wrong type (telemetry_protocol
decides both), or a value the field dictionary names that is not what it
documents (validation.py).  Keys the dictionary does not name are dropped.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import telemetry_protocol as protocol
from telemetry_collector import advisories
from telemetry_collector.validation import Allowlist, InvalidValue, parse_float

DEFAULT_MAX_BODY_BYTES = protocol.MAX_REPORT_BYTES


class IngestError(Exception):
    """A rejected report: HTTP status, a stable machine-readable code, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def as_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


@dataclass(frozen=True)
class Report:
    """A valid report: the JSON text to store (dictionary paths only) plus the columns queries need."""

    json_text: str
    db_uuid: uuid.UUID
    exported_db_uuid: uuid.UUID
    extension_version: str
    postgresql_version: str
    os_name: str
    # Keys dropped because the dictionary does not name them (counted, never kept).
    dropped_keys: int = 0
    # extensions.versions as (name, version) pairs: the answer tells of listed ones.
    extension_versions: tuple[tuple[str, str | None], ...] = ()


class ByteStream(Protocol):
    async def readany(self) -> bytes: ...


async def read_capped(stream: ByteStream, declared_length: int | None, limit: int) -> bytes:
    """The body, or IngestError(413) as soon as it is known to be over `limit`."""
    if declared_length is not None and declared_length > limit:
        raise IngestError(413, "body_too_large", f"body is {declared_length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > limit:
            raise IngestError(413, "body_too_large", f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_content_type(content_type: str) -> None:
    if content_type.lower() != protocol.CONTENT_TYPE:
        raise IngestError(415, "unsupported_media_type", f"Content-Type must be {protocol.CONTENT_TYPE}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_report(body: bytes, allowlist: Allowlist) -> Report:
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant, parse_float=parse_float)
    except UnicodeDecodeError:
        raise IngestError(400, "invalid_json", "body is not UTF-8") from None
    except RecursionError:
        raise IngestError(400, "invalid_json", "body is nested too deeply") from None
    except ValueError as exc:
        raise IngestError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise IngestError(400, "not_an_object", "body must be a JSON object")
    try:
        protocol.validate_report(data)
        cleaned = allowlist.clean(data)
    except (protocol.ProtocolError, InvalidValue) as exc:
        raise IngestError(422, "invalid_report", str(exc)) from None
    report = cleaned.report
    return Report(
        # Unchanged, the text as received is what jsonb would make of the cleaned object anyway
        # (jsonb keeps the last of duplicate keys, as json.loads does); saves serializing it again.
        json_text=json.dumps(report, ensure_ascii=False, separators=(",", ":")) if cleaned.changed else text,
        db_uuid=uuid.UUID(report["db_uuid"]),
        exported_db_uuid=uuid.UUID(report["exported_db_uuid"]),
        extension_version=report["extension_version"],
        postgresql_version=report["postgresql_version"],
        os_name=report["os_name"],
        dropped_keys=cleaned.dropped_keys,
        extension_versions=advisories.extension_versions(report),
    )
