"""Values as the report may carry them: rounded counts, public versions, finite numbers."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from packaging.version import InvalidVersion, Version


def public_version(text: str | None) -> str | None:
    """A version string as vocabulary: PEP 440 public part only, else None.

    Extension versions come from control files; a local build could put
    anything there, so only the numeric public version is sent.
    """
    if text is None:
        return None
    try:
        return Version(text).public
    except InvalidVersion:
        return None


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


def as_number(value: Any) -> int | float | None:
    """A SQL number as a JSON number: int when integral, float when finite, else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    return None


# The largest magnitude a number of the report may have: every JSON reader
# (JavaScript's too) holds integers up to 2**53 - 1 exactly.
MAX_SAFE_NUMBER = 2**53 - 1


class OutOfRange(ValueError):
    """A number beyond +-MAX_SAFE_NUMBER."""


def json_safe_number(value: Any) -> int | float | None:
    """A SQL number as a JSON number that every reader reads exactly.

    None when it is not a finite number; OutOfRange beyond +-MAX_SAFE_NUMBER.
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
    if number > MAX_SAFE_NUMBER or number < -MAX_SAFE_NUMBER:
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
