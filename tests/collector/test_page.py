"""The fleet page, rendered by headless Chromium: what a person sees, not only the JSON."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path
from typing import Any

from tests.collector.browser import dump_dom, screenshot
from tests.collector.helpers import Collector, make_report

HOSTILE = '<img src=x onerror="document.title=1">'


def text_of(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, element_id
    return html.unescape(match.group(1))


def bars(dom: str, chart: str) -> dict[str, int]:
    match = re.search(rf'<svg id="chart-{chart}".*?</svg>', dom, re.DOTALL)
    assert match, chart
    found = re.findall(r'<g class="bar" data-value="([^"]*)" data-databases="(\d+)">', match.group(0))
    return {html.unescape(value): int(n) for value, n in found}


def test_the_page_draws_the_fleet(start_collector: Any, tmp_path: Path) -> None:
    collector: Collector = start_collector(rate_limit_burst=100)
    dump = str(uuid.uuid4())
    for i in range(12):
        report = make_report(
            extension_version=["0.1.0", "0.2.0", "0.10.0"][i % 3],
            postgresql_version=["15.20", "16.4"][i % 2],
            os_name="Linux" if i < 9 else HOSTILE,
            exported_db_uuid=dump if i < 3 else str(uuid.uuid4()),
        )
        assert collector.post(report).status_code == 200

    dom = dump_dom(f"{collector.url}/")

    assert '<body data-state="ready">' in dom, dom
    assert text_of(dom, "active-7") == "12"
    assert text_of(dom, "active-30") == "12"
    assert text_of(dom, "restored-databases") == "2"
    assert text_of(dom, "restored-exports") == "1"
    assert bars(dom, "extension_version") == {"0.1.0": 4, "0.2.0": 4, "0.10.0": 4}
    assert bars(dom, "postgresql_version") == {"15.20": 6, "16.4": 6}
    assert bars(dom, "os_name") == {"Linux": 9, HOSTILE: 3}
    assert dom.count("<rect ") == 3 + 2 + 2  # one bar per value
    assert "9 (75.0%)" in dom
    assert f"<td>{dump}</td><td>3</td>" in dom
    # A report's values are shown as text, never run as markup.
    assert "<img" not in dom
    assert "&lt;img src=x" in dom

    shot = tmp_path / "fleet.png"
    screenshot(f"{collector.url}/", shot)
    assert shot.stat().st_size > 10_000


def test_the_page_loads_nothing_from_elsewhere(collector: Collector) -> None:
    page = collector.get("/")
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    for path in ("/", "/fleet.js", "/fleet.css"):
        text = collector.get(path).text
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+", text))
        assert urls <= {"http://www.w3.org"}, (path, urls)  # the SVG namespace name, never fetched


def test_an_empty_fleet_is_drawn_as_empty(collector: Collector) -> None:
    dom = dump_dom(f"{collector.url}/")
    assert '<body data-state="ready">' in dom
    assert text_of(dom, "active-30") == "0"
    assert dom.count("no active databases") == 3
