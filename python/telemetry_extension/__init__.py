"""telemetry_extension: the Python side of the telemetry PostgreSQL extension.

Runs inside the server (PL/Python); each SQL function body is a line that
calls into `telemetry_extension.entry`.  Nothing here imports `plpy`: the
server passes it in, so the modules stay importable by tests and tools.

    metrics/   one module per source of facts, each declaring its metrics
    report.py  the report assembled from the declarations
    job/       options, schedule, the tick, the sender, the version check, the audit trail
"""
