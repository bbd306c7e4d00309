-- Run once: a restore keeps the dumped options and lineage, and the first
-- report is planned with the options in force.
--
-- pg_restore fills _telemetry.options and _telemetry.lineage with COPY after
-- its CREATE EXTENSION, or into the extension that a copy of a template
-- (template1 included) already holds.  A row there under the same key (an
-- option the template set; the lineage row that the dumped database, a copy
-- of the same template, carried) failed the whole COPY.  Now a dumped option
-- replaces the one there, and a lineage row already there stays as it is.
CREATE FUNCTION _telemetry.options_replace_same_name()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM _telemetry.options WHERE name = NEW.name;
    RETURN NEW;
END
$$;
CREATE TRIGGER replace_same_name BEFORE INSERT ON _telemetry.options
    FOR EACH ROW EXECUTE FUNCTION _telemetry.options_replace_same_name();

CREATE FUNCTION _telemetry.lineage_keep_known()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM _telemetry.lineage WHERE exported_db_uuid = NEW.exported_db_uuid) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER keep_known BEFORE INSERT ON _telemetry.lineage
    FOR EACH ROW EXECUTE FUNCTION _telemetry.lineage_keep_known();

-- Whenever the options change (telemetry_set_option, or the rows a restore
-- writes), the first report's due time follows them: CREATE EXTENSION, run by
-- pg_restore before the options arrive, planned it with the defaults.
CREATE FUNCTION _telemetry.options_changed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM _telemetry.plan_first_report();
    RETURN NULL;
END
$$;
CREATE TRIGGER plan_first_report AFTER INSERT OR UPDATE OR DELETE ON _telemetry.options
    FOR EACH STATEMENT EXECUTE FUNCTION _telemetry.options_changed();

REVOKE ALL ON FUNCTION _telemetry.options_replace_same_name(), _telemetry.lineage_keep_known(),
    _telemetry.options_changed() FROM PUBLIC;
