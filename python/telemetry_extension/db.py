"""The one door to the database: prepared statements through PL/Python's plpy.

Every statement is a constant with typed parameters; values never become SQL
text.  Plans are prepared once per session and reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

Row = dict[str, Any]


class Plpy(Protocol):
    """The part of PL/Python's `plpy` module this package uses."""

    def prepare(self, query: str, argtypes: Sequence[str] = ...) -> Any: ...
    def execute(self, plan: Any, args: Sequence[Any] = ..., max_rows: int = ...) -> Any: ...
    def subtransaction(self) -> Any: ...
    def debug(self, msg: str, **kwargs: Any) -> None: ...
    def log(self, msg: str, **kwargs: Any) -> None: ...
    def notice(self, msg: str, **kwargs: Any) -> None: ...
    def warning(self, msg: str, **kwargs: Any) -> None: ...
    def error(self, msg: str, **kwargs: Any) -> None: ...


_plans: dict[tuple[str, tuple[str, ...]], Any] = {}


class Database:
    def __init__(self, plpy: Plpy) -> None:
        self.plpy = plpy

    def rows(self, query: str, args: Sequence[Any] = (), types: Sequence[str] = ()) -> list[Row]:
        key = (query, tuple(types))
        plan = _plans.get(key)
        if plan is None:
            plan = self.plpy.prepare(query, list(types))
            _plans[key] = plan
        return [dict(row) for row in self.plpy.execute(plan, list(args))]

    def row(self, query: str, args: Sequence[Any] = (), types: Sequence[str] = ()) -> Row | None:
        found = self.rows(query, args, types)
        return found[0] if found else None

    def value(self, query: str, args: Sequence[Any] = (), types: Sequence[str] = ()) -> Any:
        found = self.row(query, args, types)
        return None if found is None else next(iter(found.values()))

    def registered_query_rows(self, registered_query: str, max_rows: int) -> list[Row]:
        """Runs a metric's query that a superuser registered with register_metric().

        The one statement whose text is not a constant of this package: it is
        code a superuser supplied (as a function body is), stored in
        _telemetry.vendor_metrics, never combined with any value, not cached.
        metrics/registered.py runs it inside _telemetry.registered_value()
        (read-only), in a subtransaction that is rolled back afterwards, under
        the metric's deadline.  As a cursor: PostgreSQL opens one only for a
        single statement that returns rows.  tests/extension/test_security.py allows
        exactly this method, called from exactly that module.
        """
        plpy: Any = self.plpy
        cursor = plpy.cursor(registered_query)
        try:
            return [dict(row) for row in cursor.fetch(max_rows)]
        finally:
            cursor.close()
