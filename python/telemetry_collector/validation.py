"""Only the protocol is stored: the field dictionary, as data, is the allowlist.

`report_fields.json` is generated from the extension's metric declarations
(`python -m telemetry_extension.fields_doc --collector`); the collector reads only that
file, never the extension's code.  `clean()` walks a parsed report along it:

- a key the dictionary does not name (or a `*` key outside its vocabulary) is
  dropped and counted, never stored;
- every value the dictionary names is type- and range-checked: integers are
  non-negative and JSON-safe, numbers finite and within what jsonb stores
  (parse_float), UUIDs canonical, versions PEP 440 within the protocol's
  length (stored in PEP 440's normal form), strings from their vocabulary or character
  set, report_format_version a known one; anything else is an InvalidValue
  naming the dictionary path (never the client's own key).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import telemetry_protocol as protocol

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?[+-][0-9]{2}:[0-9]{2}")
# A registered metric's value: a number, null, or an object of numbers.
_VENDOR_TYPE = "number, null or object"


class InvalidValue(ValueError):
    """A value the dictionary names that is not what it documents."""


# jsonb keeps a number as PostgreSQL's numeric, which holds at most this many decimal places;
# the text as received is what is stored, so a literal Python reads as 0.0 (1e-20000) may not be.
NUMERIC_MAX_SCALE = 16383
_NUMBER = re.compile(r"-?[0-9]+(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?")


class BeyondNumeric(float):
    """A JSON number jsonb refuses (too many decimal places); refused wherever the dictionary names it."""


def parse_float(literal: str) -> float:
    """json.loads' parse_float: the float, marked BeyondNumeric when numeric cannot hold the literal."""
    value = float(literal)
    match = _NUMBER.fullmatch(literal)
    if match is not None:
        places, exponent = len(match[1] or ""), match[2] or "0"
        # Python does not read exponents of over 4300 digits as int; such a scale is out of range anyway.
        if len(exponent.lstrip("+-0")) > 9 or places - int(exponent) > NUMERIC_MAX_SCALE:
            return BeyondNumeric(value)
    return value


@dataclass
class _Leaf:
    path: str
    json_type: str
    spec: dict[str, Any]
    pattern: re.Pattern[str] | None = None
    values: frozenset[str] = frozenset()


@dataclass
class _Object:
    path: str
    children: dict[str, _Node] = field(default_factory=dict)
    # The node every `*` key leads to, and which keys `*` may be.
    wildcard: _Node | None = None
    wildcard_keys: frozenset[str] | None = None
    wildcard_pattern: re.Pattern[str] | None = None
    max_keys: int | None = None


_Node = _Leaf | _Object


@dataclass
class Cleaned:
    report: dict[str, Any]
    dropped_keys: int
    # False when `report` equals what was parsed (nothing dropped, nothing made canonical).
    changed: bool


class Allowlist:
    def __init__(self, data: dict[str, Any]) -> None:
        self.format_versions = frozenset(data["report_format_versions"])
        self.required = tuple(data["required"])
        marker = data["error_marker"]
        self._marker_codes = frozenset(marker["codes"])
        self._sqlstate = re.compile(marker["sqlstate_pattern"])
        self.root = _Object("")
        for path, spec in data["fields"].items():
            self._add(path, spec)
        self._check = self._compile(self.root, top=True)

    @classmethod
    def load(cls) -> Allowlist:
        text = resources.files("telemetry_collector").joinpath("report_fields.json").read_text(encoding="utf-8")
        return cls(json.loads(text))

    def _add(self, path: str, spec: dict[str, Any]) -> None:
        parts = path.split(".")
        node = self.root
        for depth, part in enumerate(parts[:-1]):
            node = self._child(node, part, ".".join(parts[: depth + 1]), spec)
        last = parts[-1]
        if spec["type"] == "object":
            self._child(node, last, path, spec)
            return
        leaf = _Leaf(path, spec["type"], spec)
        if spec.get("format") == "pattern":
            leaf.pattern = re.compile(spec["pattern"])
        if spec.get("format") == "vocabulary":
            leaf.values = frozenset(spec["values"])
        wildcard = spec.get("wildcard", {})
        if "key_pattern" in wildcard and "max_object_keys" in wildcard:
            leaf.pattern = re.compile(wildcard["key_pattern"])
        if last == "*":
            self._set_wildcard(node, leaf, spec)
        else:
            node.children[last] = leaf

    def _child(self, node: _Object, part: str, path: str, spec: dict[str, Any]) -> _Object:
        if part == "*":
            if node.wildcard is None:
                self._set_wildcard(node, _Object(path), spec)
            child = node.wildcard
        else:
            child = node.children.setdefault(part, _Object(path))
        assert isinstance(child, _Object), path
        return child

    @staticmethod
    def _set_wildcard(node: _Object, child: _Node, spec: dict[str, Any]) -> None:
        wildcard = spec["wildcard"]
        node.wildcard = child
        if "keys" in wildcard:
            node.wildcard_keys = frozenset(wildcard["keys"])
        if "key_pattern" in wildcard:
            node.wildcard_pattern = re.compile(wildcard["key_pattern"])
        node.max_keys = wildcard.get("max_keys")

    # ---- checking a report ------------------------------------------------
    #
    # The tree above is compiled once into one function per node (`_compile`):
    # each takes a value and the tally and returns the value to store or raises
    # InvalidValue.  What is checked is decided here, once, not per value.

    def clean(self, report: dict[str, Any]) -> Cleaned:
        """The report with only dictionary paths, every value checked; InvalidValue otherwise."""
        tally = [0, 0]  # dropped keys, values made canonical
        out = self._check(report, tally)
        if out.get("report_format_version") not in self.format_versions:
            raise InvalidValue("report_format_version is not a known one")
        return Cleaned(out, tally[0], changed=tally[0] > 0 or tally[1] > 0)

    def _compile(self, node: _Node, top: bool = False) -> _Check:
        if isinstance(node, _Leaf):
            return _compile_leaf(node)
        # Per key: its check, and whether an error marker may stand in for its value.
        children = {key: (self._compile(child), top or _is_vendor(child)) for key, child in node.children.items()}
        wildcard = None if node.wildcard is None else (self._compile(node.wildcard), top or _is_vendor(node.wildcard))
        wildcard_keys, wildcard_pattern, max_keys = node.wildcard_keys, node.wildcard_pattern, node.max_keys
        marker = self._marker
        path = node.path

        def check_object(value: Any, tally: list[int]) -> dict[str, Any]:
            if type(value) is not dict:
                raise InvalidValue(f"{path} must be an object")
            out: dict[str, Any] = {}
            wild = 0
            for key, item in value.items():
                entry = children.get(key)
                if (
                    entry is None
                    and wildcard is not None
                    and (max_keys is None or wild < max_keys)
                    and (
                        key in wildcard_keys
                        if wildcard_keys is not None
                        else wildcard_pattern is not None and wildcard_pattern.fullmatch(key) is not None
                    )
                ):
                    entry = wildcard
                    wild += 1
                if entry is None:
                    tally[0] += 1
                    continue
                check, marker_allowed = entry
                if marker_allowed and type(item) is dict and len(item) == 1 and "error" in item:
                    out[key] = marker(item["error"])
                    continue
                out[key] = check(item, tally)
            return out

        return check_object

    def _marker(self, code: Any) -> dict[str, str]:
        if isinstance(code, str) and (code in self._marker_codes or self._sqlstate.fullmatch(code)):
            return {"error": code}
        raise InvalidValue("an error marker holds an unknown code")


_Check = Callable[[Any, list[int]], Any]


def _is_vendor(node: _Node) -> bool:
    return isinstance(node, _Leaf) and node.json_type == _VENDOR_TYPE


def _compile_leaf(node: _Leaf) -> _Check:
    path, json_type = node.path, node.json_type
    nullable = "null" in json_type
    if json_type.startswith("integer"):
        message = f"{path} must be an integer from 0 to {protocol.MAX_SAFE_INTEGER}"

        def check_integer(item: Any, tally: list[int]) -> Any:
            if type(item) is int and 0 <= item <= protocol.MAX_SAFE_INTEGER:
                return item
            if item is None and nullable:
                return None
            raise InvalidValue(message)

        return check_integer
    if json_type == "boolean":

        def check_boolean(item: Any, tally: list[int]) -> Any:
            if type(item) is bool:
                return item
            raise InvalidValue(f"{path} must be true or false")

        return check_boolean
    if json_type.startswith("string"):
        return _compile_string(node, nullable)
    if json_type == _VENDOR_TYPE:
        return _compile_vendor(node)

    def undocumented(item: Any, tally: list[int]) -> Any:  # a dictionary this code does not know
        raise InvalidValue(f"{path} has an undocumented type")

    return undocumented


def _compile_string(node: _Leaf, nullable: bool) -> _Check:
    path, spec = node.path, node.spec
    fmt = spec.get("format")
    max_length = spec.get("max_length", 64)
    too_long = f"{path} is longer than {max_length} characters"
    test: Callable[[str], bool]
    if fmt == "uuid":
        test, wrong = _matches(_UUID), f"{path} must be a UUID"
    elif fmt == "version":
        test, wrong = _is_version, f"{path} must be a PEP 440 public version"
    elif fmt == "timestamp":
        test, wrong = _is_timestamp, f"{path} must be an ISO 8601 timestamp with offset"
    elif fmt == "vocabulary":
        test, wrong = node.values.__contains__, f"{path} must be one of its documented values"
    elif fmt == "pattern":
        assert node.pattern is not None
        test, wrong = _matches(node.pattern), f"{path} holds characters it may not"
    else:
        test, wrong = (lambda text: False), f"{path} has an undocumented format"
    lower = fmt == "uuid"
    canonical = fmt == "version"

    def check_string(item: Any, tally: list[int]) -> Any:
        if type(item) is not str:
            if item is None and nullable:
                return None
            raise InvalidValue(f"{path} must be a string")
        if len(item) > max_length:
            raise InvalidValue(too_long)
        if not test(item):
            raise InvalidValue(wrong)
        if lower and not item.islower() and any(c.isalpha() for c in item):
            tally[1] += 1  # stored canonical: lower case
            return item.lower()
        if canonical and (normal := _normal_version(item)) != item:
            tally[1] += 1  # stored in PEP 440's normal form: " v0.2.0 " and "0.2.0" are one version
            return normal
        return item

    return check_string


def _compile_vendor(node: _Leaf) -> _Check:
    path = node.path
    limit = node.spec["wildcard"]["max_object_keys"]
    key_pattern = node.pattern

    def number(item: Any) -> int | float:
        if type(item) is int and -protocol.MAX_SAFE_INTEGER <= item <= protocol.MAX_SAFE_INTEGER:
            return item
        if type(item) is float and math.isfinite(item):
            return item
        if type(item) is BeyondNumeric:
            raise InvalidValue(f"{path} must be a number jsonb can store (at most {NUMERIC_MAX_SCALE} decimal places)")
        raise InvalidValue(f"{path} must be a finite number")

    def check_vendor(item: Any, tally: list[int]) -> Any:
        if item is None:
            return None
        if type(item) is not dict:
            return number(item)
        out: dict[str, int | float | None] = {}
        for key, value in item.items():
            if len(out) >= limit or key_pattern is None or not key_pattern.fullmatch(key):
                tally[0] += 1
                continue
            out[key] = None if value is None else number(value)
        return out

    return check_vendor


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    fullmatch = pattern.fullmatch
    return lambda text: fullmatch(text) is not None


# Versions repeat across a fleet (a few releases of each extension): each text's PEP 440
# normal form (None: no version) is remembered.
_normal_version = functools.lru_cache(maxsize=4096)(protocol.normal_version)


def _is_version(text: str) -> bool:
    return _normal_version(text) is not None


def _is_timestamp(text: str) -> bool:
    if not _TIMESTAMP.fullmatch(text):
        return False
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
