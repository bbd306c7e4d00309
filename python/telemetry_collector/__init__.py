"""telemetry_collector: the receiving end of the telemetry extension's reports.

An aiohttp service that validates and stores reports in PostgreSQL (psycopg 3
with psycopg_pool), answers each with the newest release, and shows the fleet.
It shares only `telemetry_protocol` with the extension, never the code that
runs inside PostgreSQL.
"""
