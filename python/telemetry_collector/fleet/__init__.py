"""The vendor side: roll-ups of the stored reports and the private service that shows them.

`rollup` turns new rows of collector.reports into small daily aggregates;
`serve-fleet` (its own process, listener, pool and statement timeout) serves
the fleet JSON, the fleet page and CSV exports from those aggregates only, so
no vendor read touches the reports table or the ingest edge's connections.
"""
