"""What the answer says of each product this database runs: checked, stored, and told.

A collector from 0.3.0 on answers, per product it lists releases of (this
extension, PostgreSQL, extensions the report named), the newest release, the
newest of the installed series, whether a newer release fixes security issues,
whether the series is end of life, and a release-notes link (the protocol
module validates all of it).  Here every entry must name a product and version
the report sent, or the whole answer is refused (nothing stored, the attempt's
one line).  A collector before 0.3.0 answers only the newest release of the
extension: that is stored as the extension's row, the rest unknown (NULL).

Stored in _telemetry.versions (one row per product, replaced by each answer),
shown by the telemetry_versions view.  Told in the server log: one WARNING per
product that is out of date, the most urgent kind first: a security fix, end
of life, then a routine newer release (said not to be urgent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from packaging.version import Version

import telemetry_protocol as protocol
from telemetry_extension.db import Database
from telemetry_extension.job.version_check import Verdict
from telemetry_extension.job.version_check import tell as tell_newest_only

SECURITY, END_OF_LIFE, ROUTINE = "security", "end_of_life", "routine"
_URGENCY = {SECURITY: 0, END_OF_LIFE: 1, ROUTINE: 2}


@dataclass(frozen=True)
class Product:
    """A row of _telemetry.versions.  security/end_of_life None: the collector did not say."""

    product: str
    installed: str
    newest: str
    newest_in_series: str | None
    security: bool | None
    end_of_life: bool | None
    notes_url: str | None
    up_to_date: bool
    # Not stored: whether the newest of the series takes the security fix (which step the WARNING names).
    security_in_series: bool | None = None

    @property
    def kind(self) -> str | None:
        """What the WARNING says: None when up to date."""
        if self.security:
            return SECURITY
        if self.end_of_life:
            return END_OF_LIFE
        return None if self.up_to_date else ROUTINE


def _reported(sent_body: bytes, installed: str) -> dict[str, str]:
    """The products and versions the report carried (this extension's own version from the build)."""
    sent = json.loads(sent_body)
    extensions = sent.get("extensions")
    versions = extensions.get("versions") if isinstance(extensions, dict) else None
    reported = {k: v for k, v in (versions or {}).items() if isinstance(v, str)}
    reported[protocol.PRODUCT_POSTGRESQL] = str(sent.get("postgresql_version"))
    reported[protocol.PRODUCT_SELF] = installed
    return reported


def _same_version(a: str, b: str) -> bool:
    """Whether two texts are one release version (0.2 and 0.2.0 are); never for what is no version."""
    version = protocol.version_or_none(a)
    return version is not None and version == protocol.version_or_none(b)


def judge(verdict: Verdict, sent_body: bytes) -> list[Product]:
    """The rows to store; protocol.ProtocolError when an entry names what the report did not carry."""
    own = Product(protocol.PRODUCT_SELF, verdict.installed, verdict.latest, None, None, None, None, verdict.up_to_date)
    if verdict.products is None:
        return [own]
    reported = _reported(sent_body, verdict.installed)
    products: list[Product] = []
    for entry in verdict.products:
        sent = reported.get(entry.product)
        if sent is None or not _same_version(sent, entry.installed):
            raise protocol.ProtocolError(f"products names {entry.product} {entry.installed}, which this report did not")
        if entry.product == protocol.PRODUCT_SELF and entry.newest != verdict.latest:
            raise protocol.ProtocolError("products names another newest release of the extension than latest_version")
        current = protocol.is_up_to_date(Version(entry.installed), Version(entry.newest))
        products.append(
            Product(
                entry.product,
                entry.installed,
                entry.newest,
                entry.newest_in_series,
                entry.security,
                entry.end_of_life,
                entry.notes_url,
                current and not entry.security and not entry.end_of_life,
                entry.security_in_series,
            )
        )
    if not any(p.product == protocol.PRODUCT_SELF for p in products):
        products.insert(0, own)
    return products


def store(db: Database, products: list[Product]) -> None:
    """The answer's rows replace the last answer's."""
    db.rows("DELETE FROM _telemetry.versions")
    for p in products:
        db.rows(
            """INSERT INTO _telemetry.versions (product, installed, newest, newest_in_series, security,
                                                end_of_life, notes_url, up_to_date, checked_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, pg_catalog.clock_timestamp())""",
            [
                p.product,
                p.installed,
                p.newest,
                p.newest_in_series,
                p.security,
                p.end_of_life,
                p.notes_url,
                p.up_to_date,
            ],
            ["text", "text", "text", "text", "boolean", "boolean", "text", "boolean"],
        )


def tell(db: Database, verdict: Verdict, products: list[Product]) -> None:
    """One WARNING per product out of date, the most urgent first; the extension's own LOG line when current."""
    if verdict.products is None:
        tell_newest_only(db, verdict)
        return
    behind = sorted((p for p in products if p.kind is not None), key=lambda p: _URGENCY[p.kind or ROUTINE])
    for p in behind:
        message, hint = words(p)
        db.plpy.warning(message, hint=hint)
    own = next(p for p in products if p.product == protocol.PRODUCT_SELF)
    if own.kind is None:
        db.plpy.log(f"telemetry: version {own.installed} is up to date (newest release {own.newest})")


def _label(product: str) -> str:
    if product == protocol.PRODUCT_SELF:
        return "the telemetry extension"
    if product == protocol.PRODUCT_POSTGRESQL:
        return "PostgreSQL"
    return f"the extension {product}"


def _series(p: Product) -> str:
    return protocol.series_text(protocol.series_of(p.product, Version(p.installed))) + ".x"


def step(p: Product) -> str:
    """The release to go to (the protocol's rule)."""
    return str(
        protocol.advice_step(
            Version(p.installed),
            Version(p.newest),
            None if p.newest_in_series is None else Version(p.newest_in_series),
            bool(p.security),
            bool(p.security_in_series),
            bool(p.end_of_life),
        )
    )


def words(p: Product) -> tuple[str, str]:
    """The WARNING of an out-of-date product and its HINT."""
    to = step(p)
    if to == p.newest:
        steps = f"the newest release is {p.newest}"
    else:
        steps = f"the smallest step is {to} (the newest of {_series(p)}), the newest release is {p.newest}"
    eol = f"its release series {_series(p)} has reached end of life"
    if p.kind == SECURITY:
        head = "telemetry: security fix available"
        reason = " and a newer release fixes security issues" + (f"; {eol}" if p.end_of_life else "")
    elif p.kind == END_OF_LIFE:
        head, reason = "telemetry: end of life", f" and {eol}"
    else:
        head, reason = "telemetry: newer release available (routine, not urgent)", ""
    notes = f" Release notes: {p.notes_url}" if p.notes_url else ""
    message = f"{head}: {_label(p.product)} {p.installed} is installed{reason}; {steps}.{notes}"
    return message, _hint(p, to)


def _hint(p: Product, to: str) -> str:
    if p.product == protocol.PRODUCT_SELF:
        return f"Install telemetry {to}, then run ALTER EXTENSION telemetry UPDATE in each database."
    if p.product == protocol.PRODUCT_POSTGRESQL:
        if protocol.series_of(p.product, Version(to)) == protocol.series_of(p.product, Version(p.installed)):
            return (
                f"Install the PostgreSQL {to} server packages and restart the server: a minor release "
                "needs no dump and no pg_upgrade."
            )
        return f"Upgrade to PostgreSQL {to} with pg_upgrade, or a dump and restore: it is a new major release."
    return f"Install {p.product} {to}, then run ALTER EXTENSION {p.product} UPDATE in each database that has it."
