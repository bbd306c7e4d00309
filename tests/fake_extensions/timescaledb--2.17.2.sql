-- NOT TimescaleDB: the views and catalog tables of TimescaleDB 2.x that
-- python/telemetry_extension/metrics/timescaledb.py reads, with the same names and the
-- columns it uses, plus a helper that turns a table into a "hypertable" with
-- chunk tables that inherit from it (as TimescaleDB's chunks do).

CREATE SCHEMA _timescaledb_catalog;
CREATE SCHEMA _timescaledb_internal;
CREATE SCHEMA _timescaledb_functions;
CREATE SCHEMA _timescaledb_config;
CREATE SCHEMA timescaledb_information;

CREATE TABLE _timescaledb_catalog.hypertable (
    id                       serial PRIMARY KEY,
    schema_name              name NOT NULL,
    table_name               name NOT NULL,
    compression_state        smallint NOT NULL DEFAULT 0,  -- 1 enabled, 2 internal compressed hypertable
    compressed_hypertable_id integer
);
CREATE TABLE _timescaledb_catalog.chunk (
    id                  serial PRIMARY KEY,
    hypertable_id       integer NOT NULL,
    schema_name         name NOT NULL,
    table_name          name NOT NULL,
    compressed_chunk_id integer
);
CREATE TABLE _timescaledb_catalog.compression_chunk_size (
    chunk_id                 integer PRIMARY KEY,
    compressed_chunk_id      integer,
    uncompressed_heap_size   bigint NOT NULL,
    uncompressed_toast_size  bigint NOT NULL,
    uncompressed_index_size  bigint NOT NULL,
    compressed_heap_size     bigint NOT NULL,
    compressed_toast_size    bigint NOT NULL,
    compressed_index_size    bigint NOT NULL,
    numrows_pre_compression  bigint,
    numrows_post_compression bigint
);
CREATE TABLE _timescaledb_catalog.continuous_agg (
    mat_hypertable_id integer NOT NULL,
    user_view_schema  name NOT NULL,
    user_view_name    name NOT NULL,
    materialized_only boolean NOT NULL DEFAULT true
);
CREATE TABLE _timescaledb_config.bgw_job (
    id               integer PRIMARY KEY,
    application_name name NOT NULL,
    proc_schema      name NOT NULL,
    proc_name        name NOT NULL,
    hypertable_id    integer
);
-- TimescaleDB's own jobs have ids below 1000.
INSERT INTO _timescaledb_config.bgw_job VALUES
    (1, 'Telemetry Reporter [1]', '_timescaledb_functions', 'policy_telemetry', NULL),
    (3, 'Job History Log Retention Policy [3]', '_timescaledb_functions', 'policy_job_stat_history_retention', NULL);

CREATE VIEW timescaledb_information.hypertables AS
SELECT h.schema_name AS hypertable_schema, h.table_name AS hypertable_name,
       (SELECT count(*) FROM _timescaledb_catalog.chunk AS c WHERE c.hypertable_id = h.id)::int AS num_chunks,
       h.compression_state = 1 AS compression_enabled
  FROM _timescaledb_catalog.hypertable AS h
 WHERE h.compression_state <> 2;

CREATE VIEW timescaledb_information.continuous_aggregates AS
SELECT user_view_schema AS view_schema, user_view_name AS view_name, materialized_only
  FROM _timescaledb_catalog.continuous_agg;

CREATE VIEW timescaledb_information.jobs AS
SELECT id AS job_id, application_name, proc_schema, proc_name, hypertable_id
  FROM _timescaledb_config.bgw_job;

-- Test helper: makes `rel` a hypertable with `chunks` chunk tables in
-- _timescaledb_internal (inheriting from it, one row each); with `compress`,
-- compression is enabled and the first chunk is recorded as compressed.
CREATE FUNCTION _timescaledb_functions.fake_hypertable(rel regclass, chunks integer, compress boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    hid integer;
    nsp name;
    tbl name;
    chunk text;
BEGIN
    SELECT n.nspname, c.relname INTO nsp, tbl
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.oid = rel;
    INSERT INTO _timescaledb_catalog.hypertable (schema_name, table_name, compression_state)
    VALUES (nsp, tbl, CASE WHEN compress THEN 1 ELSE 0 END) RETURNING id INTO hid;
    FOR i IN 1 .. chunks LOOP
        chunk := pg_catalog.format('_hyper_%s_%s_chunk', hid, i);
        EXECUTE pg_catalog.format('CREATE TABLE _timescaledb_internal.%I () INHERITS (%s)', chunk, rel);
        INSERT INTO _timescaledb_catalog.chunk (hypertable_id, schema_name, table_name)
        VALUES (hid, '_timescaledb_internal', chunk);
    END LOOP;
    IF compress THEN
        INSERT INTO _timescaledb_catalog.hypertable (schema_name, table_name, compression_state)
        VALUES ('_timescaledb_internal', pg_catalog.format('_compressed_hypertable_%s', hid), 2);
        INSERT INTO _timescaledb_catalog.compression_chunk_size
        SELECT id, NULL, 81920, 8192, 16384, 16384, 0, 8192, 1000, 10
          FROM _timescaledb_catalog.chunk WHERE hypertable_id = hid ORDER BY id LIMIT 1;
    END IF;
    RETURN hid;
END
$$;

-- As TimescaleDB does: its catalog is readable by everyone.
GRANT USAGE ON SCHEMA _timescaledb_catalog, _timescaledb_internal, _timescaledb_functions, _timescaledb_config,
    timescaledb_information TO PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA _timescaledb_catalog, _timescaledb_config, timescaledb_information TO PUBLIC;
