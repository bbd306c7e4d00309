"""Turning a request body into a report fit to store, or a clear 4xx.

400: not UTF-8 JSON, or not a JSON object.  413: larger than the limit (read
with a cap, never buffered whole).  415: not application/json.  422: a JSON
object that lacks a required key, has a wrong type (telemetry_protocol decides
both), a db_uuid or exported_db_uuid that is not a UUID, or a value
PostgreSQL's jsonb cannot hold (NUL characters, lone surrogates, nesting
deeper than MAX_DEPTH).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import telemetry_protocol as protocol

DEFAULT_MAX_BODY_BYTES = protocol.MAX_REPORT_BYTES
MAX_DEPTH = 16
# Stored in their own columns: longer values are kept only in the jsonb.
MAX_COLUMN_CHARS = 128


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
    """A valid report: its JSON text as received plus the columns queries need."""

    json_text: str
    db_uuid: uuid.UUID
    exported_db_uuid: uuid.UUID
    extension_version: str
    postgresql_version: str
    os_name: str


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


def parse_report(body: bytes) -> Report:
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant)
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
    except protocol.ProtocolError as exc:
        raise IngestError(422, "invalid_report", str(exc)) from None
    _check_storable(data)
    return Report(
        json_text=text,
        db_uuid=_uuid(data, "db_uuid"),
        exported_db_uuid=_uuid(data, "exported_db_uuid"),
        extension_version=_column(data["extension_version"]),
        postgresql_version=_column(data["postgresql_version"]),
        os_name=_column(data["os_name"]),
    )


def _uuid(data: dict[str, Any], key: str) -> uuid.UUID:
    try:
        return uuid.UUID(data[key])
    except ValueError:
        raise IngestError(422, "invalid_report", f"{key} must be a UUID") from None


def _column(value: str) -> str:
    return value[:MAX_COLUMN_CHARS]


def _check_storable(data: dict[str, Any]) -> None:
    """What json accepts but jsonb refuses: NUL, lone surrogates, deep nesting."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise IngestError(422, "invalid_report", f"report is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_string(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_string(value)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise IngestError(422, "invalid_report", "strings must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise IngestError(422, "invalid_report", "strings must be valid Unicode (no lone surrogates)") from None
