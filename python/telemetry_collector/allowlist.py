"""Only the protocol is stored: the field dictionary, as data, is the allowlist.

`report_fields.json` is generated from the extension's metric declarations
(`python -m telemetry_extension.fields_doc --collector`); the collector reads only that
file, never the extension's code.  `clean()` walks a parsed report along it:

- a key the dictionary does not name (or a `*` key outside its vocabulary) is
  dropped and counted, never stored;
- every value the dictionary names is type- and range-checked: integers are
  non-negative and JSON-safe, numbers finite, UUIDs canonical, versions PEP 440
  within the protocol's length, strings from their vocabulary or character
  set, report_format_version a known one; anything else is an InvalidValue
  naming the dictionary path (never the client's own key).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import telemetry_protocol as protocol

# Integers beyond 2**53 do not survive a JSON round trip through most readers.
MAX_SAFE_INTEGER = 2**53 - 1
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?[+-][0-9]{2}:[0-9]{2}")
# A registered metric's value: a number, null, or an object of numbers.
_VENDOR_TYPE = "number, null or object"


class InvalidValue(ValueError):
    """A value the dictionary names that is not what it documents."""


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

    def clean(self, report: dict[str, Any]) -> Cleaned:
        """The report with only dictionary paths, every value checked; InvalidValue otherwise."""
        tally = [0, 0]  # dropped keys, values made canonical
        out = self._object(self.root, report, tally, top=True)
        if out.get("report_format_version") not in self.format_versions:
            raise InvalidValue("report_format_version is not a known one")
        return Cleaned(out, tally[0], changed=tally[0] > 0 or tally[1] > 0)

    def _object(self, node: _Object, value: dict[str, Any], dropped: list[int], top: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        wild = 0
        for key, item in value.items():
            child = node.children.get(key)
            if child is None and node.wildcard is not None and self._wildcard_key(node, key, wild):
                child = node.wildcard
                wild += 1
            if child is None:
                dropped[0] += 1
                continue
            if (top or (isinstance(child, _Leaf) and child.json_type == _VENDOR_TYPE)) and self._is_marker(item):
                out[key] = {"error": item["error"]}
                continue
            out[key] = self._value(child, item, dropped)
        return out

    @staticmethod
    def _wildcard_key(node: _Object, key: str, taken: int) -> bool:
        if node.max_keys is not None and taken >= node.max_keys:
            return False
        if node.wildcard_keys is not None:
            return key in node.wildcard_keys
        return node.wildcard_pattern is not None and node.wildcard_pattern.fullmatch(key) is not None

    def _is_marker(self, item: Any) -> bool:
        if not (isinstance(item, dict) and len(item) == 1 and "error" in item):
            return False
        code = item["error"]
        if isinstance(code, str) and (code in self._marker_codes or self._sqlstate.fullmatch(code)):
            return True
        raise InvalidValue("an error marker holds an unknown code")

    def _value(self, node: _Node, item: Any, dropped: list[int]) -> Any:
        if isinstance(node, _Object):
            if not isinstance(item, dict):
                raise InvalidValue(f"{node.path} must be an object")
            return self._object(node, item, dropped)
        json_type = node.json_type
        if item is None and "null" in json_type:
            return None
        if json_type.startswith("integer"):
            if not (type(item) is int and 0 <= item <= MAX_SAFE_INTEGER):
                raise InvalidValue(f"{node.path} must be an integer from 0 to {MAX_SAFE_INTEGER}")
            return item
        if json_type == "boolean":
            if type(item) is not bool:
                raise InvalidValue(f"{node.path} must be true or false")
            return item
        if json_type.startswith("string"):
            if not isinstance(item, str):
                raise InvalidValue(f"{node.path} must be a string")
            text = self._string(node, item)
            if text is not item:
                dropped[1] += 1
            return text
        if json_type == _VENDOR_TYPE:
            if isinstance(item, dict):
                return self._numbers(node, item, dropped)
            return self._number(node, item)
        raise InvalidValue(f"{node.path} has an undocumented type")  # a dictionary this code does not know

    def _string(self, node: _Leaf, text: str) -> str:
        spec = node.spec
        fmt = spec["format"]
        if len(text) > spec.get("max_length", 64):
            raise InvalidValue(f"{node.path} is longer than {spec.get('max_length', 64)} characters")
        if fmt == "uuid":
            if not _UUID.fullmatch(text):
                raise InvalidValue(f"{node.path} must be a UUID")
            return text if text.islower() or not any(c.isalpha() for c in text) else text.lower()
        if fmt == "version":
            try:
                protocol.parse_version(text)
            except protocol.ProtocolError:
                raise InvalidValue(f"{node.path} must be a PEP 440 public version") from None
            return text
        if fmt == "timestamp":
            try:
                if not _TIMESTAMP.fullmatch(text):
                    raise ValueError
                dt.datetime.fromisoformat(text)
            except ValueError:
                raise InvalidValue(f"{node.path} must be an ISO 8601 timestamp with offset") from None
            return text
        if fmt == "vocabulary":
            if text not in node.values:
                raise InvalidValue(f"{node.path} must be one of its documented values")
            return text
        if fmt == "pattern":
            assert node.pattern is not None
            if not node.pattern.fullmatch(text):
                raise InvalidValue(f"{node.path} holds characters it may not")
            return text
        raise InvalidValue(f"{node.path} has an undocumented format")

    @staticmethod
    def _number(node: _Leaf, item: Any) -> int | float:
        if type(item) is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
            return item
        if type(item) is float and math.isfinite(item):
            return item
        raise InvalidValue(f"{node.path} must be a finite number")

    def _numbers(self, node: _Leaf, item: dict[str, Any], dropped: list[int]) -> dict[str, int | float | None]:
        limit = node.spec["wildcard"]["max_object_keys"]
        out: dict[str, int | float | None] = {}
        for key, value in item.items():
            if len(out) >= limit or node.pattern is None or not node.pattern.fullmatch(key):
                dropped[0] += 1
                continue
            out[key] = None if value is None else self._number(node, value)
        return out
