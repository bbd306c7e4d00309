"""Fills a database with many relations, quickly, for bench/report_speed.py.

Relations come in groups of ten: five plain tables (a primary-key index and a
text column, hence a TOAST table and its index; one row each), one partitioned
table with two partitions, one view and one materialized view.  Each batch of
groups is one procedure call that commits every `GROUP_PER_COMMIT` groups, so
no transaction holds more locks than the lock table has room for.
"""

from __future__ import annotations

from typing import Any

import psycopg

RELATIONS_PER_GROUP = 10
GROUPS_PER_COMMIT = 200

_PROCEDURE = """
CREATE OR REPLACE PROCEDURE public.bench_fill(first_group int, last_group int, per_commit int)
LANGUAGE plpgsql
AS $$
DECLARE
    s text;
BEGIN
    FOR g IN first_group .. last_group LOOP
        s := 'bench_' || (g / 1000);
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', s);
        FOR t IN 1 .. 5 LOOP
            EXECUTE format('CREATE TABLE %I.t%s_%s (id int PRIMARY KEY, body text)', s, g, t);
            EXECUTE format('INSERT INTO %I.t%s_%s VALUES (1, repeat(''x'', 20))', s, g, t);
        END LOOP;
        EXECUTE format('CREATE TABLE %I.p%s (id int, body text) PARTITION BY RANGE (id)', s, g);
        EXECUTE format('CREATE TABLE %I.p%s_a PARTITION OF %I.p%s FOR VALUES FROM (0) TO (100)', s, g, s, g);
        EXECUTE format('CREATE TABLE %I.p%s_b PARTITION OF %I.p%s FOR VALUES FROM (100) TO (200)', s, g, s, g);
        EXECUTE format('CREATE VIEW %I.v%s AS SELECT id, body FROM %I.t%s_1', s, g, s, g);
        EXECUTE format('CREATE MATERIALIZED VIEW %I.m%s AS SELECT id, body FROM %I.t%s_2', s, g, s, g);
        IF (g - first_group + 1) % per_commit = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END
$$;
"""


def fill(conn: psycopg.Connection[Any], relations: int, already: int = 0) -> int:
    """Adds groups until the database holds about `relations` benchmark relations; returns how many it holds."""
    conn.execute(_PROCEDURE)
    first = already // RELATIONS_PER_GROUP
    last = relations // RELATIONS_PER_GROUP - 1
    if last >= first:
        conn.execute("CALL public.bench_fill(%s, %s, %s)", (first, last, GROUPS_PER_COMMIT))
    return (last + 1) * RELATIONS_PER_GROUP


def catalog_rows(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pg_catalog.pg_class").fetchone()
    assert row is not None
    return int(row[0])
