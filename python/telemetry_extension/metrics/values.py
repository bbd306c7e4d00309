"""Values as the report may carry them: rounded counts, finite numbers, uname text."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

import telemetry_protocol as protocol

SIGNIFICANT_DIGITS = 2


def approx(value: int | float | Decimal | None) -> int:
    """A count or size that could single a database out, kept to two significant digits.

    0..99 stay exact; 12_345 becomes 12_000; 987_654_321 becomes 990_000_000.
    See docs/metrics.md for why two digits and not Citus's powers of two.
    """
    if value is None:
        return 0
    number = round(float(value))
    if number < 0:
        return 0
    if number < 10**SIGNIFICANT_DIGITS:
        return number
    digits = len(str(number)) - SIGNIFICANT_DIGITS
    return int(round(number, -digits))


class OutOfRange(ValueError):
    """A number beyond +-protocol.MAX_SAFE_INTEGER."""


def json_safe_number(value: Any) -> int | float | None:
    """A SQL number as a JSON number that every reader reads exactly.

    None when it is not a finite number; OutOfRange beyond +-protocol.MAX_SAFE_INTEGER.
    The magnitude is checked before any conversion: a numeric of 5,000 digits
    never becomes a Python int (whose str() stops at 4,300 digits).
    """
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number: int | float | Decimal = value
    if isinstance(number, Decimal) and not number.is_finite():
        return None
    if isinstance(number, float) and not math.isfinite(number):
        return None
    if number > protocol.MAX_SAFE_INTEGER or number < -protocol.MAX_SAFE_INTEGER:
        raise OutOfRange(type(value).__name__)
    if isinstance(number, Decimal):
        return int(number) if number == number.to_integral_value() else float(number)
    if isinstance(number, float):
        return int(number) if number.is_integer() else number
    return number


# What uname text may keep (a regex character class body) and how much of it.
UNAME_CHARS = "0-9A-Za-z .:_()#+~-"
UNAME_MAX_CHARS = 128
_UNAME_UNSAFE = re.compile(f"[^{UNAME_CHARS}]")


def uname_text(text: str) -> str:
    """An operating system's name, release or build: its safe characters, at most 128."""
    return _UNAME_UNSAFE.sub("", text)[:UNAME_MAX_CHARS]
