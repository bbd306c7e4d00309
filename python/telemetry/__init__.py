"""telemetry: the Python side of the PostgreSQL extension.

Runs inside the server (PL/Python); each SQL function body is a line that calls
into `telemetry.entry`.  Nothing here imports `plpy`: the server passes it in,
so the modules stay importable by tests, tools and the collector.
"""
