-- Runs on every install and update, before the definitions: the extension's schema must be one
-- no untrusted role owns.  Its owner may drop it (and the extension with it, CASCADE) and create
-- in its place look-alikes of get_report() or telemetry_status that a superuser later runs
-- unqualified.  Without SCHEMA, CREATE EXTENSION takes the first schema of the search_path that
-- exists, which may be a "$user" schema another role made.  Trusted owners: a superuser, or
-- pg_database_owner (PostgreSQL's own owner of public).
DO $schema_owner$
DECLARE
    schema_name pg_catalog.name;
    owner pg_catalog.name;
BEGIN
    SELECT n.nspname, r.rolname INTO schema_name, owner
      FROM pg_catalog.pg_namespace AS n
      JOIN pg_catalog.pg_roles AS r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace::pg_catalog.oid
       AND NOT r.rolsuper
       AND r.rolname OPERATOR(pg_catalog.<>) 'pg_database_owner';
    IF FOUND THEN
        RAISE EXCEPTION 'telemetry: schema "%" is owned by role "%", which is not a superuser', schema_name, owner
            USING HINT = 'A role that owns the extension''s schema can replace what a superuser later calls. '
                         'Create the extension in a schema a superuser owns: '
                         'CREATE EXTENSION telemetry SCHEMA public CASCADE.';
    END IF;
END
$schema_owner$;
