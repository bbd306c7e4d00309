"""Registered metrics cannot lie or break the report: one read-only SELECT, JSON-safe numbers, one deadline."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from tests.extension.job.helpers import answer, attempts, configure, tick
from tests.helpers import assert_registration_refused, register_metric, report, scalar

MAX_SAFE = 2**53 - 1


def store_unchecked(conn: psycopg.Connection[Any], key: str, query: str, timeout_ms: int = 1000) -> None:
    """A registration as it may drift after the fact (a superuser editing the table): never validated."""
    conn.execute(
        "INSERT INTO _telemetry.vendor_metrics (key, level, summary, query, timeout_ms)"
        " VALUES (%s, 'basic', 'drifted', %s, %s)",
        [key, query, timeout_ms],
    )


@pytest.fixture
def side_effects(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    db.execute("CREATE TABLE public.sink (id int)")
    db.execute("INSERT INTO public.sink VALUES (1), (2)")
    db.execute("CREATE SEQUENCE public.counter")
    db.execute(
        "CREATE FUNCTION public.write_something() RETURNS SETOF int LANGUAGE sql "
        "AS 'INSERT INTO public.sink VALUES (1) RETURNING id'"
    )
    return db


SIDE_EFFECTS = {
    "cte_delete": "WITH d AS (DELETE FROM public.sink RETURNING 1) SELECT count(*) FROM d",
    "writer": "SELECT count(*) FROM public.write_something()",
    "sequence": "SELECT pg_catalog.nextval('public.counter')",
    "row_lock": "SELECT count(*) FROM (SELECT id FROM public.sink FOR UPDATE) AS s",
}

OUT_OF_RANGE = {
    "huge_int": "SELECT 10::numeric ^ 5000",  # 5,001 digits: past Python's int-to-str limit
    "past_float": "SELECT 1e400::numeric",  # finite in SQL, infinite as a float
    "past_safe": f"SELECT {MAX_SAFE + 1}::int8",
    "below_safe": f"SELECT {-MAX_SAFE - 1}::int8",
    "nan": "SELECT 'NaN'::float8",
    "infinity": "SELECT 'Infinity'::float8",
    "numeric_nan": "SELECT 'NaN'::numeric",
}


def test_shown_and_sent_are_the_same_with_metrics_of_every_kind(
    side_effects: psycopg.Connection[Any], httpserver: HTTPServer
) -> None:
    db = side_effects
    assert register_metric(db, "count", "SELECT count(*) FROM public.sink") == 2
    assert register_metric(db, "float", "SELECT 0.1::float8 AS f, 2.5::numeric AS n, 1e-7::float8 AS tiny") == {
        "f": 0.1,
        "n": 2.5,
        "tiny": 1e-7,
    }
    assert register_metric(db, "largest", f"SELECT {MAX_SAFE}::int8 AS up, {-MAX_SAFE}::numeric AS down") == {
        "up": MAX_SAFE,
        "down": -MAX_SAFE,
    }
    store_unchecked(db, "slow", "SELECT count(*) FROM pg_catalog.pg_sleep(2)", timeout_ms=100)
    for key, query in {**SIDE_EFFECTS, **OUT_OF_RANGE}.items():
        store_unchecked(db, key, query)

    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    configure(db, httpserver.url_for("/v1/report"))
    db.execute("CHECKPOINT")  # the database's size settles: nothing is written until the send
    shown = scalar(db, "SELECT get_report()::text")
    assert tick(db)["outcome"] == "sent"
    [(request, _)] = httpserver.log
    sent = request.get_data()

    # What get_report() shows is what was sent, byte for byte; the audit keeps the same bytes.
    assert sent == shown.encode()
    assert attempts(db)[0]["body"].encode() == sent
    vendor = json.loads(sent)["vendor_metrics"]
    assert vendor["count"] == 2
    assert vendor["float"] == {"f": 0.1, "n": 2.5, "tiny": 1e-7}
    assert vendor["largest"] == {"up": MAX_SAFE, "down": -MAX_SAFE}
    assert vendor["slow"] == {"error": "timeout"}
    for key in OUT_OF_RANGE:
        assert vendor[key] == {"error": "invalid_result"}, key
    for key in SIDE_EFFECTS:
        assert set(vendor[key]) == {"error"} and vendor[key]["error"] in {"25006", "0A000"}, (key, vendor[key])
    assert b"Infinity" not in sent and b"NaN" not in sent
    # Nothing was written, not even while sending.
    assert scalar(db, "SELECT count(*) FROM public.sink") == 2
    assert db.execute("SELECT last_value, is_called FROM public.counter").fetchone() == (1, False)


@pytest.mark.parametrize(
    ("key", "query", "complaint"),
    [
        # Numbers a report cannot carry: past the largest safe integer, or not finite.
        *[
            (key, query, "outside -9007199254740991..9007199254740991")
            for key, query in OUT_OF_RANGE.items()
            if key.endswith(("int", "float", "safe"))
        ],
        ("nan", OUT_OF_RANGE["nan"], "not a finite number"),
        ("numeric_nan", OUT_OF_RANGE["numeric_nan"], "not a finite number"),
        ("infinity", OUT_OF_RANGE["infinity"], "not a finite number"),
        # Side effects, and more than one statement.
        ("cte_delete", SIDE_EFFECTS["cte_delete"], "the query failed (0A000)"),
        ("writer", SIDE_EFFECTS["writer"], "the query failed (25006)"),
        ("sequence", SIDE_EFFECTS["sequence"], "the query failed (25006)"),
        ("row_lock", SIDE_EFFECTS["row_lock"], "the query failed (0A000)"),
        ("two", "SELECT 1; SELECT 2", "the query failed (42P11)"),
        ("semicolon", "SELECT 1; DELETE FROM public.sink", "the query failed (42P11)"),
        ("select_into", "SELECT 1 AS x INTO TEMP grabbed", "the query failed (42P11)"),
        ("update", "UPDATE public.sink SET id = 3 RETURNING id", "the query failed"),
        # Not one row of numbers, a bad name, a query that fails.
        ("texts", "SELECT 'hello'", "not a finite number"),
        ("flags", "SELECT true", "not a finite number"),
        ("rows", "SELECT g FROM generate_series(1, 2) g", "exactly one row"),
        ("none", "SELECT 1 WHERE false", "exactly one row"),
        ("names", 'SELECT 1 AS "Bad Name", 2 AS b', "column name"),
        ("Bad-Key", "SELECT 1", "key must match"),
        ("broken", "SELECT count(*) FROM", "the query failed (42601)"),
        ("columns", "SELECT", "1 to 8 columns"),
        ("missing", "SELECT count(*) FROM no_such_table", "the query failed (42P01)"),
    ],
)
def test_registration_refuses_all_but_one_read_only_row_of_safe_numbers(
    side_effects: psycopg.Connection[Any], key: str, query: str, complaint: str
) -> None:
    db = side_effects
    assert_registration_refused(db, key, query, complaint)
    assert db.execute("SELECT count(*), max(id) FROM public.sink").fetchone() == (2, 2)


def test_the_report_deadline_caps_the_sum_of_metric_deadlines(db: psycopg.Connection[Any]) -> None:
    # Two metrics of 60 s each would hold the report two minutes: the report's
    # own deadline (30 s) cuts the first, and the second, instant, never runs.
    store_unchecked(db, "a_slow", "SELECT count(*) FROM pg_catalog.pg_sleep(120)", timeout_ms=60_000)
    store_unchecked(db, "b_instant", "SELECT 1", timeout_ms=60_000)
    vendor = report(db)["vendor_metrics"]
    assert vendor == {"a_slow": {"error": "timeout"}, "b_instant": {"error": "timeout"}}
    # Not an artefact: with the budget back, the instant one answers.
    db.execute("DELETE FROM _telemetry.vendor_metrics WHERE key = 'a_slow'")
    assert report(db)["vendor_metrics"] == {"b_instant": 1}


def test_the_python_part_refuses_to_run_a_query_outside_the_read_only_wrapper(side_effects: Any, cluster: Any) -> None:
    """A pg_monitor member may run registered metrics (get_report()), but only read-only: calling the
    Python part directly, past _telemetry.registered_value(), runs nothing."""
    db = side_effects
    store_unchecked(db, "sequence", SIDE_EFFECTS["sequence"])
    db.execute("CREATE ROLE registered_reader LOGIN IN ROLE pg_monitor")
    db.execute("GRANT USAGE, UPDATE ON SEQUENCE public.counter TO registered_reader")  # only read-only stops it
    try:
        with cluster.connect(db.info.dbname, user="registered_reader") as reader:
            direct = reader.execute("SELECT _telemetry.registered_query_value('sequence')").fetchone()
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                reader.execute("SELECT _telemetry.registered_value('sequence')")
    finally:
        db.execute("DROP OWNED BY registered_reader")
        db.execute("DROP ROLE registered_reader")
    assert direct is not None
    assert json.loads(direct[0]) == {"invalid": "not run read-only (call _telemetry.registered_value)"}
    assert db.execute("SELECT last_value, is_called FROM public.counter").fetchone() == (1, False)
