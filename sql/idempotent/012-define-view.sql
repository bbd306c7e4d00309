-- Runs on every install and update: how the scripts make the views of the extension's schema.

-- Creates the view, or replaces it when it is the extension's own (an update):
-- CREATE OR REPLACE keeps its columns (a release only appends), the grants a
-- DBA gave on it and the views built on it.  Never another role's view of that
-- name (PostgreSQL refuses that too).  The statement is made here, from the
-- scripts' constants (view_name as written in SQL), because pgspot (make lint)
-- reads a CREATE OR REPLACE VIEW in a script as replacing anyone's.
CREATE OR REPLACE FUNCTION _telemetry.define_view(view_name text, query text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    existing pg_catalog.regclass := pg_catalog.to_regclass(view_name);
BEGIN
    IF existing IS NOT NULL AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_depend AS d
          JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objid = existing::pg_catalog.oid
           AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.deptype = 'e' AND e.extname = 'telemetry') THEN
        RAISE EXCEPTION 'telemetry: % exists and is not the extension''s own view', existing;
    END IF;
    EXECUTE pg_catalog.format('CREATE %s VIEW %s AS %s',
                              CASE WHEN existing IS NULL THEN '' ELSE 'OR REPLACE' END, view_name, query);
END
$$;
REVOKE ALL ON FUNCTION _telemetry.define_view(text, text) FROM PUBLIC;
