-- Run once: the lock that makes a second concurrent send skip.  An empty
-- table that nothing reads; the tick takes it with LOCK TABLE ... NOWAIT, which
-- needs privileges on it that only its owner has, so no other role can take it
-- to silence sends (0.1.0 used an advisory lock that any role could take).
CREATE TABLE _telemetry.send_lock ();
COMMENT ON TABLE _telemetry.send_lock IS 'Locked by the tick while it sends; never holds rows';
REVOKE ALL ON _telemetry.send_lock FROM PUBLIC;
