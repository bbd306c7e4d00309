"""Settings dataclasses as command-line options: each field declares its default, help and bounds once.

A field made with `option()` is the option named after it (`pool_max_size`:
`--pool-max-size`, unless `flag` says otherwise), of the field's annotated type
(`int | None`: an int, None when not given; `bool`: a switch that flips the
default).  `add_options` adds a dataclass's options to a parser, `from_args`
makes the dataclass from what was parsed.  A subclass may redeclare an
inherited option with only another default (`port: int = 8081`): its help and
bounds stay the base's.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
S = TypeVar("S")

_OPTION = "option"


class ConfigError(ValueError):
    """A setting refused; the message names the option, as the operator typed it."""


@dataclass(frozen=True)
class Option:
    help: str  # "{default}" in it shows the default
    flag: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    # Turns what was given (None when nothing was) into the setting, e.g. a file's first line.
    read: Callable[[Any], Any] | None = None


def option(
    default: T,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    read: Callable[[Any], Any] | None = None,
) -> T:
    """A dataclass field that is also a command-line option."""
    return dataclasses.field(default=default, metadata={_OPTION: Option(help, flag, metavar, choices, minimum, read)})


def _declared(cls: type, name: str) -> Option | None:
    """The field's option, from the nearest class declaring it with `option()`."""
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and _OPTION in declared.metadata:
            return typing.cast(Option, declared.metadata[_OPTION])
    return None


def _options(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Option]]:
    for declared in dataclasses.fields(cls):
        found = _declared(cls, declared.name)
        if found is not None:
            yield declared, found


def flag(cls: type, name: str) -> str:
    """The option that sets field `name` of `cls`, as the operator types it."""
    found = _declared(cls, name)
    assert found is not None, name
    return found.flag or "--" + name.replace("_", "-")


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _scalar(hint: Any) -> Any:
    """int for `int` and `int | None`."""
    if isinstance(hint, types.UnionType):
        (kind,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
        return kind
    return hint


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per `option()` field of the dataclass `cls`, with its default and help."""
    hints = typing.get_type_hints(cls)
    for declared, found in _options(cls):
        name = flag(cls, declared.name)
        # argparse formats help with %: a literal one is doubled.
        text = found.help.format(default=_shown(declared.default)).replace("%", "%%")
        kind = _scalar(hints[declared.name])
        extra: dict[str, Any] = {}
        if kind is bool:
            extra["action"] = "store_false" if declared.default else "store_true"
        elif found.choices:
            extra.update(type=kind, choices=found.choices)
        else:  # named after the option, not the field
            extra.update(type=kind, metavar=found.metavar or name.removeprefix("--").replace("-", "_").upper())
        parser.add_argument(name, dest=declared.name, default=declared.default, help=text, **extra)


def from_args(cls: type[S], args: argparse.Namespace, **given: Any) -> S:
    """`cls` from the parsed options (checked against their minimum) and the other fields `given`."""
    values = dict(given)
    for declared, found in _options(cls):
        value = getattr(args, declared.name)
        if found.read is not None:
            value = found.read(value)
        if found.minimum is not None and value is not None and value < found.minimum:
            raise ConfigError(f"{flag(cls, declared.name)} must be at least {_shown(found.minimum)}")
        values[declared.name] = value
    return cls(**values)
