"""The answer to a report: the newest release, compared with ours, stored and told."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import Version

import telemetry_protocol as protocol
from telemetry_extension import build_info
from telemetry_extension.db import Database


@dataclass(frozen=True)
class Verdict:
    installed: str
    latest: str
    up_to_date: bool
    collector_up_to_date: bool | None
    # The answer's `products` (job/advisories.py); None from a collector before 0.3.0.
    products: tuple[protocol.ProductAdvice, ...] | None = None


def judge(answer_body: bytes) -> Verdict:
    """Raises protocol.ProtocolError for an answer that does not follow the protocol."""
    answer = protocol.parse_answer(answer_body)
    installed = Version(build_info.VERSION)
    # Our own comparison decides (the protocol's rule: release order, and a
    # pre-release never makes a final release out of date); the collector's
    # verdict is kept beside it.
    up_to_date = protocol.is_up_to_date(installed, Version(answer.latest_version))
    return Verdict(str(installed), answer.latest_version, up_to_date, answer.up_to_date, answer.products)


def store(db: Database, verdict: Verdict) -> None:
    db.rows(
        """INSERT INTO _telemetry.latest_version
               (latest_version, installed_version, up_to_date, collector_up_to_date, learned_at)
           VALUES ($1, $2, $3, $4, pg_catalog.clock_timestamp())
           ON CONFLICT (singleton) DO UPDATE
              SET latest_version = excluded.latest_version, installed_version = excluded.installed_version,
                  up_to_date = excluded.up_to_date, collector_up_to_date = excluded.collector_up_to_date,
                  learned_at = excluded.learned_at""",
        [verdict.latest, verdict.installed, verdict.up_to_date, verdict.collector_up_to_date],
        ["text", "text", "boolean", "boolean"],
    )


def tell(db: Database, verdict: Verdict) -> None:
    """One WARNING when we are behind; nothing above LOG when current."""
    if verdict.up_to_date:
        db.plpy.log(f"telemetry: version {verdict.installed} is up to date (newest release {verdict.latest})")
    else:
        db.plpy.warning(
            f"telemetry: version {verdict.installed} is installed; the newest release is {verdict.latest}",
            hint=f"Install telemetry {verdict.latest}, then run ALTER EXTENSION telemetry UPDATE in each database.",
        )
