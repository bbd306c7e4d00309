"""The landing page, GET / on the public edge: what a firewall administrator finds at the endpoint.

Rendered by headless Chromium; the screenshot is kept at build/test-output/landing-page.png.
"""

from __future__ import annotations

import html
import json
import re
import threading
from typing import Any

import psycopg
import requests

from telemetry_collector.geo import NoCountry
from tests.collector.browser import dump_dom, screenshot
from tests.collector.helpers import REPO, make_report

SCREENSHOT = REPO / "build" / "test-output" / "landing-page.png"
DICTIONARY = json.loads((REPO / "python" / "telemetry_collector" / "report_fields.json").read_text())
OPERATOR = {"operator_name": "Example Data <b>GmbH</b>", "operator_contact": "privacy@example.invalid"}


def test_the_page_says_who_runs_it_and_every_key_a_report_holds(start_collector: Any) -> None:
    collector = start_collector(**OPERATOR, retention_days=395)

    dom = dump_dom(f"{collector.url}/")

    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert "Operator: Example Data <b>GmbH</b>" in text  # shown as text, never as markup
    assert "<b>GmbH</b>" not in dom
    assert "Contact: privacy@example.invalid" in text
    rows = re.findall(
        r'<tr data-key="([^"]+)"><td[^>]*><code>[^<]*</code>.*?</td><td>([^<]*)</td><td>([^<]*)</td>', dom
    )
    assert [key for key, _, _ in rows] == list(DICTIONARY["fields"])  # every key, in the dictionary's order
    for key, kind, meaning in rows:
        spec = DICTIONARY["fields"][key]
        assert html.unescape(kind).startswith(spec["type"]), key
        assert html.unescape(meaning) == spec["meaning"], key
    assert ("install_method", "string: one of " + ", ".join(DICTIONARY["fields"]["install_method"]["values"])) in [
        (key, html.unescape(kind)) for key, kind, _ in rows
    ]
    for promise in (
        "No IP address: not in a table, not in a log line.",
        "Regional Internet Registries",
        "Reports are kept for 395 days",
        "telemetry-collector erase --db-uuid <uuid>",
        "ALTER SYSTEM SET telemetry.metrics_level = off;",
        "DISABLE_TELEMETRY=1",
    ):
        assert promise in text, promise

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    screenshot(f"{collector.url}/", SCREENSHOT, size="1280,2400")
    assert SCREENSHOT.stat().st_size > 50_000
    print(f"screenshot: {SCREENSHOT}")


def test_the_page_is_static_self_contained_and_needs_no_database(
    start_collector: Any, collector_dsn: str, collector_db: psycopg.Connection[Any]
) -> None:
    collector = start_collector(geo=NoCountry())
    first = collector.get("/")
    assert first.status_code == 200 and first.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "This collector stores no country" in first.text  # the page follows the lookup in use
    csp = first.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "unsafe" not in csp
    assert not re.findall(r"(?:https?:)?//[\w.-]+", first.text)  # nothing fetched from anywhere
    assert (
        requests.get(f"{collector.url}/", headers={"If-None-Match": first.headers["ETag"]}, timeout=30).status_code
        == 304
    )

    # Reports never reach the page: the same bytes after one arrives.
    assert collector.post(make_report(os_name="FreeBSD 14.1 SPECIAL")).status_code == 200
    assert collector.get("/").content == first.content

    # With its database gone, the edge's health fails and the page is still served.
    dbname = collector_db.info.dbname
    admin_dsn = collector_dsn.replace(f"dbname={dbname}", "dbname=postgres")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
        try:
            assert collector.get("/healthz").status_code == 503
            again = collector.get("/")
            assert again.status_code == 200 and again.content == first.content
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')


def test_under_ingest_load_the_page_is_served_and_reports_still_succeed(
    start_collector: Any, collector_db: psycopg.Connection[Any]
) -> None:
    collector = start_collector(pool_max_size=4)
    page = collector.get("/").content
    senders, per_sender = 4, 40
    statuses: list[int] = []
    pages: list[bool] = []
    stop = threading.Event()

    def send() -> None:
        with requests.Session() as session:
            for _ in range(per_sender):
                response = session.post(f"{collector.url}/v1/report", json=make_report(), timeout=60)
                statuses.append(response.status_code)

    def read() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                response = session.get(f"{collector.url}/", timeout=60)
                pages.append(response.status_code == 200 and response.content == page)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    stop.set()
    reader.join(60)

    assert statuses == [200] * senders * per_sender
    assert pages and all(pages), (len(pages), pages.count(False))
    row = collector_db.execute("SELECT count(*) FROM collector.reports").fetchone()
    assert row == (senders * per_sender,)
