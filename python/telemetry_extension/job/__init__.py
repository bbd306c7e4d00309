"""The reporting job: options, schedule, the tick, the send, the version check, the audit trail.

Importing this package imports nothing: the status view reads `job.schedule`
and `job.options` without loading the sender (and with it `requests`), which
only a send imports.
"""
