"""The fleet page, rendered by headless Chromium: what a vendor sees, not only the JSON.

The screenshot of the populated page is kept at build/test-output/fleet-page.png.
"""

from __future__ import annotations

import datetime as dt
import html
import random
import re
import subprocess
import uuid
from typing import Any

import psycopg

from telemetry_collector.fleet import rollup, views
from tests.collector.browser import dump_dom, screenshot
from tests.collector.fleet_helpers import at, known_fleet, roll_up, store, today
from tests.collector.helpers import REPO

HOSTILE = "<img src=x onerror=alert(1)>"
SCREENSHOT = REPO / "build" / "test-output" / "fleet-page.png"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def text_of(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, element_id
    return html.unescape(match.group(1))


def bars(dom: str, chart: str) -> list[tuple[str, int]]:
    match = re.search(rf'<svg id="chart-{chart}".*?</svg>', dom, re.DOTALL)
    assert match, chart
    found = re.findall(r'<g class="bar" data-value="([^"]*)" data-databases="(\d+)">', match.group(0))
    return [(html.unescape(value), int(n)) for value, n in found]


def realistic_fleet(conn: psycopg.Connection[Any], days: int = 55) -> None:
    """A few hundred databases over two months: growth, two releases adopted, some churn."""
    rng = random.Random(4)
    t = today(conn)
    first = t - dt.timedelta(days=days)
    conn.execute(
        "INSERT INTO collector.releases (version, added_at) VALUES ('0.1.0', %s), ('0.2.0', %s), ('0.2.1', %s)",
        (at(first - dt.timedelta(days=30)), at(t - dt.timedelta(days=35)), at(t - dt.timedelta(days=12))),
    )
    rows = []
    for i in range(260):
        start = int(days * rng.random() ** 0.7)
        stop = days + 1 if rng.random() < 0.85 else rng.randrange(start, days + 1)
        upgrade_1 = days - 35 + int(rng.expovariate(1 / 6))
        upgrade_2 = days - 12 + int(rng.expovariate(1 / 4))
        fields = {
            "db_uuid": str(uuid.uuid4()),
            "postgresql_version": rng.choice(["15.20", "15.19", "16.9", "17.5", "17.5", "18.1"]),
            "os_name": "Linux" if i < 250 else rng.choice(["FreeBSD", "Darwin", HOSTILE]),
            "install_method": rng.choice(["deb", "deb", "rpm", "docker", "source"]),
            "data_volume": int(rng.lognormvariate(21, 2.5)),
            "related_extensions": {
                "pg_cron": rng.random() < 0.6,
                "postgis": rng.random() < 0.2,
                "timescaledb": rng.random() < 0.3,
                "vector": rng.random() < 0.15,
            },
        }
        for day in range(start, stop):
            version = "0.2.1" if day >= upgrade_2 else "0.2.0" if day >= upgrade_1 else "0.1.0"
            received_at = at(first + dt.timedelta(days=day), rng.uniform(0, 23))
            rows.append((received_at, {**fields, "extension_version": version}))
    for received_at, fields in sorted(rows, key=lambda r: r[0]):
        store(conn, received_at, **fields)


def test_the_page_draws_the_fleet(collector_dsn: str, collector_db: psycopg.Connection[Any], start_vendor: Any) -> None:
    t, _ = known_fleet(collector_db)
    store(collector_db, at(t, 4), os_name=HOSTILE, extension_version="0.10.0")
    # 0.10.0 fixes security issues: the two databases on older releases have a fix outstanding.
    collector_db.execute("UPDATE collector.releases SET security = true WHERE version = '0.10.0'")
    collector_db.execute("UPDATE collector.reports SET country = 'JP' WHERE os_name = 'FreeBSD'")
    roll_up(collector_dsn, until=at(t, 23))
    vendor = start_vendor()

    dom = dump_dom(f"{vendor.url}/?days=45")

    assert '<body data-state="ready">' in dom, dom[-2000:]
    assert text_of(dom, "active-7") == "5"
    assert text_of(dom, "active-30") == "6"
    assert text_of(dom, "up-to-date") == "66.7%"
    assert text_of(dom, "up-to-date-caption") == "on the newest release, 0.10.0"
    assert text_of(dom, "new-30") == "6"
    assert text_of(dom, "quiet-30") == "1"
    assert text_of(dom, "restored-databases") == "1"
    assert text_of(dom, "security-share") == "33.3%"
    assert text_of(dom, "end-of-life-share") == "0.0%"
    assert bars(dom, "extension_version") == [("0.2.0", 1), ("0.9.0", 1), ("0.10.0", 4)]  # release order
    assert bars(dom, "postgresql_major") == [("15", 4), ("16", 1), ("17", 1)]
    assert bars(dom, "os_name") == [("Linux", 4), (HOSTILE, 1), ("FreeBSD", 1)]
    assert bars(dom, "timescaledb") == [("not installed", 5), ("hypertables", 1)]
    assert bars(dom, "country") == [("unknown", 5), ("JP", 1)]
    assert "4 (66.7%)" in dom
    # The time series are drawn (uPlot: one chart, with its legend, per series set).
    assert dom.count('class="uplot') == 5
    for label in (
        "last 7 days",
        "last 30 days",
        "gone quiet",
        "0.10.0 or newer",
        "up to date",
        "security fix outstanding",
        "end-of-life series",
    ):
        assert f">{label}<" in dom, label
    rows = re.findall(r'<tr data-release="([^"]+)"><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>', dom)
    assert rows == [("0.10.0", "7 days"), ("0.9.0", "0 days")]
    # A report's values are shown as text, never run as markup; no database is named.
    assert "<img" not in dom
    assert "&lt;img src=x" in dom
    assert not UUID.search(dom)


def test_a_screenshot_a_vendor_can_read(
    collector_dsn: str, collector_db: psycopg.Connection[Any], start_vendor: Any
) -> None:
    realistic_fleet(collector_db)
    roll_up(collector_dsn, until=at(today(collector_db), 23))
    vendor = start_vendor()
    dom = dump_dom(f"{vendor.url}/?days=60")
    assert '<body data-state="ready">' in dom

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    screenshot(f"{vendor.url}/?days=60", SCREENSHOT, size="1280,1960")
    assert SCREENSHOT.stat().st_size > 50_000
    print(f"screenshot: {SCREENSHOT}")


def test_the_page_has_a_bar_chart_for_each_dimension_but_the_advisory_shares(start_vendor: Any) -> None:
    """fleet.js draws each chart of the page from the JSON's dimension of that name; the page names them."""
    page = start_vendor().get("/").text
    charts = re.findall(r'<svg id="chart-([a-z_]+)" class="chart"', page)
    assert sorted(charts) == sorted(set(rollup.DIMENSIONS) - set(views.ADVISORY_FLAGS))


def test_the_page_loads_nothing_from_elsewhere(start_vendor: Any) -> None:
    vendor = start_vendor()
    page = vendor.get("/")
    assert page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    for path in ("/", "/fleet.js", "/fleet.css", "/uplot/uPlot.min.css"):
        text = vendor.get(path).text
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+", text))
        assert urls <= {"http://www.w3.org"}, (path, urls)  # the SVG namespace name, never fetched
    library = vendor.get("/uplot/uPlot.iife.min.js")
    assert library.headers["Content-Type"].startswith("text/javascript")
    # The vendored library names its home in its licence comment, and fetches nothing.
    assert set(re.findall(r"(?:https?:)?//[\w.-]+", library.text)) <= {"https://github.com"}
    assert not re.search(r"\bfetch\(|XMLHttpRequest|importScripts|\bimport\(", library.text)


def test_an_empty_fleet_is_drawn_as_empty(start_vendor: Any) -> None:
    vendor = start_vendor()
    dom = dump_dom(f"{vendor.url}/")
    assert '<body data-state="ready">' in dom
    assert text_of(dom, "active-30") == "0"
    assert dom.count("none among the active databases") == 10
    assert dom.count("no reports rolled up yet") == 5
    assert "Nothing rolled up yet" in dom


def test_the_screenshot_never_shows_up_as_a_change_to_the_sources() -> None:
    """Where the screenshot is written, git ignores it: a test run leaves nothing to commit by mistake."""
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "--no-index", "--quiet", str(SCREENSHOT)], check=False
    )
    assert ignored.returncode == 0, f"{SCREENSHOT} is not ignored by git"
