-- Run once: every user-facing function says it is telemetry's (telemetry_*),
-- get_report() excepted.  0.1.0 created these under generic names in the
-- extension's schema, where other extensions keep theirs (TimescaleDB has a
-- run_job); the idempotent files create the telemetry_* names.  Only our own
-- members go: a function of the same name that is not the extension's stays.
DO $$
DECLARE
    member pg_catalog.regprocedure;
BEGIN
    FOR member IN
        SELECT d.objid::pg_catalog.regprocedure
          FROM pg_catalog.pg_depend AS d
         WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
           AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension AS e WHERE e.extname = 'telemetry')
           AND d.deptype = 'e'
           AND d.objid IN (SELECT pg_catalog.to_regprocedure(f)
                             FROM pg_catalog.unnest(ARRAY[
                                 '@extschema@.run_job()',
                                 '@extschema@.send_report()',
                                 '@extschema@.set_telemetry_option(text, text)',
                                 '@extschema@.register_metric(text, text, text, integer, text)',
                                 '@extschema@.unregister_metric(text)',
                                 '@extschema@.set_metric_enabled(text, boolean)']) AS f)
    LOOP
        EXECUTE pg_catalog.format('DROP FUNCTION %s', member);
    END LOOP;
END
$$;
