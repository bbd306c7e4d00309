"""The landing page, GET /: what this service is, who runs it, and what a report holds.

For whoever finds the endpoint in an outbound firewall rule.  The page is made
once, when the application is built, from the operator's settings and the field
dictionary (report_fields.json, so it cannot drift from what the edge accepts);
it is then served as the same bytes, without touching the database, fetching
nothing from elsewhere (its CSS is inline, allowed by its hash), and it never
shows anything from the reports received.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from telemetry_collector.config import Settings
from telemetry_collector.country import RegistryCountry
from telemetry_collector.geo import CountryLookup, NoCountry

_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1d2329; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #d5dbe1; }
code { font: 0.9em ui-monospace, monospace; background: #f1f3f5; padding: 0 0.2em; }
pre { background: #f1f3f5; padding: 0.6rem; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.93rem; }
th, td { text-align: left; vertical-align: top; padding: 0.25rem 0.5rem; border-bottom: 1px solid #e3e7eb; }
td.nested code { margin-left: 1.2em; } .muted { color: #5b6670; }
"""


@dataclass(frozen=True)
class LandingPage:
    body: bytes
    headers: dict[str, str]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fields_table(dictionary: dict[str, Any]) -> str:
    required = set(dictionary["required"])
    rows = []
    for path, spec in dictionary["fields"].items():
        kind = spec["type"]
        if spec.get("values"):
            kind += ": one of " + ", ".join(spec["values"])
        elif spec.get("format") in ("uuid", "timestamp", "version"):
            kind += f" ({spec['format']})"
        mark = " <span class=muted>(always sent)</span>" if path in required else ""
        nested = ' class="nested"' if "." in path else ""
        rows.append(
            f'<tr data-key="{_e(path)}"><td{nested}><code>{_e(path)}</code>{mark}</td>'
            f"<td>{_e(kind)}</td><td>{_e(spec['meaning'])}</td></tr>"
        )
    return (
        "<table id=fields><thead><tr><th>key</th><th>type</th><th>meaning</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _country_rule(geo: CountryLookup) -> str:
    if isinstance(geo, NoCountry):
        return "<p>This collector stores no country. The sender's address is not kept either.</p>"
    source = (
        "the allocations the five Regional Internet Registries publish (the country a block of addresses is "
        "registered to)"
        if isinstance(geo, RegistryCountry)
        else "a country lookup its operator chose"
    )
    return (
        "<p>From the address a report comes from (behind the operator's proxy, the address the proxy saw), "
        f"this collector derives a two-letter ISO 3166-1 country code, from {source}, and stores only that "
        "code beside the report; none for private, loopback or unlisted addresses. The address itself is used "
        "in memory for this and for a per-address limit on new databases a day, then forgotten: it is not "
        "stored, not logged, not passed on.</p>"
    )


def render(settings: Settings, geo: CountryLookup) -> str:
    dictionary = json.loads(
        resources.files("telemetry_collector").joinpath("report_fields.json").read_text(encoding="utf-8")
    )
    name = settings.operator_name or "(the operator has not stated a name)"
    contact = settings.operator_contact or "(the operator has not stated a contact)"
    level = "<code>telemetry.metrics_level</code>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Telemetry collector of the PostgreSQL telemetry extension</title><style>{_CSS}</style></head>
<body>
<h1>Telemetry collector of the PostgreSQL <code>telemetry</code> extension</h1>
<p>This address receives anonymous usage reports from PostgreSQL databases where the <code>telemetry</code>
extension is installed, and answers each with the newest release of the extension, so that a database
running an older one can warn its administrator. Reports come in as <code>POST /v1/report</code>; besides a
health check, this page is the only other thing it serves to the public. It shows no report and nothing
derived from them.</p>

<h2>Who runs it</h2>
<p>Operator: <strong id=operator-name>{_e(name)}</strong><br>
Contact: <strong id=operator-contact>{_e(contact)}</strong></p>

<h2>What a report holds</h2>
<p>Exactly the keys below (report format version {_e(", ".join(map(str, dictionary["report_format_versions"])))}),
generated from the field dictionary this collector checks every report against: a key not listed is dropped
on arrival, a value of the wrong type or outside its vocabulary refuses the report. A database administrator
sees the report their database would send with <code>SELECT get_report();</code>. Any metric may instead hold
an error marker, <code>{{"error": code}}</code>, with a SQLSTATE or one of
{_e(", ".join(dictionary["error_marker"]["codes"]))}.</p>
{_fields_table(dictionary)}
<p>Beside each report the collector keeps the time it arrived and the country code described below.</p>

<h2>What is never collected</h2>
<ul>
<li>No name a user chose: no database, schema, table, role or host names, no file paths.</li>
<li>No setting values, no query text, no data from any table.</li>
<li>No IP address: not in a table, not in a log line.</li>
<li>No key outside the table above: unknown keys are dropped before anything is stored.</li>
</ul>

<h2>Country</h2>
{_country_rule(geo)}

<h2>Retention and erasure</h2>
<p>Reports are kept for {settings.retention_days} days, then deleted (by whole months, once all of a month
is older). To have a database's reports erased sooner, write to the contact above with its
<code>db_uuid</code>, which <code>SELECT get_report()-&gt;&gt;'db_uuid';</code> shows. The operator runs
<code>telemetry-collector erase --db-uuid &lt;uuid&gt;</code>, which deletes every stored report of that database
and the one roll-up row naming it; the daily counts, which name no database, stay.</p>

<h2>How to turn telemetry off</h2>
<p>In the database server, as a superuser:</p>
<pre>ALTER SYSTEM SET telemetry.metrics_level = off;
SELECT pg_reload_conf();</pre>
<p>With {level} at <code>off</code> nothing is sent and no version check is made. Or set
<code>DISABLE_TELEMETRY=1</code> in the PostgreSQL server's environment, which turns it off whatever
{level} says; or <code>DROP EXTENSION telemetry;</code>.</p>
</body></html>
"""


def build(settings: Settings, geo: CountryLookup) -> LandingPage:
    text = render(settings, geo)
    body = text.encode("utf-8")
    style_hash = base64.b64encode(hashlib.sha256(_CSS.encode("utf-8")).digest()).decode()
    return LandingPage(
        body,
        {
            "Content-Type": "text/html; charset=utf-8",
            # Nothing may load from anywhere; the one inline style is allowed by its hash.
            "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{style_hash}'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "public, max-age=3600",
            "ETag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        },
    )


LANDING = web.AppKey("landing", LandingPage)


async def get_landing(request: web.Request) -> web.Response:
    page = request.app[LANDING]
    if request.headers.get("If-None-Match") == page.headers["ETag"]:
        return web.Response(status=304, headers={"ETag": page.headers["ETag"]})
    return web.Response(body=page.body, headers=page.headers)


def add_route(app: web.Application, settings: Settings, geo: CountryLookup) -> None:
    app[LANDING] = build(settings, geo)
    app.router.add_get("/", get_landing)
