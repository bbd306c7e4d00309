"""Releases with meaning: per product, security fixes, release notes, end of life; the answer's `products`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import pytest
import requests
from packaging.version import Version

import telemetry_protocol as protocol
from telemetry_collector import advisories
from tests.collector.fleet_helpers import at, roll_up, store, today
from tests.collector.helpers import make_report, run_cli

NOTES = "https://example.org/releases/{}"


def add(dsn: str, version: str, *options: str) -> str:
    return run_cli("release", "add", version, *options, "--dsn", dsn).stdout.strip()


def test_release_commands_record_product_security_notes_and_end_of_life(collector_dsn: str) -> None:
    assert add(collector_dsn, "0.2.0") == "added 0.2.0"
    assert add(collector_dsn, "0.2.3", "--security", "--notes-url", NOTES.format("0.2.3")) == "added 0.2.3 (security)"
    assert add(collector_dsn, "15.21", "--product", "postgresql", "--security") == "added postgresql 15.21 (security)"
    assert add(collector_dsn, "2.18.0", "--product", "timescaledb") == "added timescaledb 2.18.0"
    # The same version of another product is another release.
    assert add(collector_dsn, "2.18.0", "--product", "postgis") == "added postgis 2.18.0"
    eol = run_cli("release", "eol", "0.1", "--dsn", collector_dsn).stdout.strip()
    assert eol == "telemetry 0.1.x: end of life"
    eol = run_cli("release", "eol", "13", "--product", "postgresql", "--dsn", collector_dsn).stdout.strip()
    assert eol == "postgresql 13.x: end of life"

    listing = run_cli("release", "list", "--dsn", collector_dsn).stdout
    lines = listing.splitlines()
    assert lines[0] == "telemetry (end of life: 0.1.x)"
    assert lines[1].split()[:4] == ["*", "0.2.3", "security", NOTES.format("0.2.3")]
    assert lines[2].split()[:3] == ["0.2.0", "-", "added"]
    assert "postgresql (end of life: 13.x)" in lines
    assert "timescaledb" in lines and "postgis" in lines

    for bad, message in [
        (("0.3.0", "--notes-url", "http://example.org/notes"), "https"),
        (("0.3.0", "--notes-url", "https://example.org/a b"), "https"),
        (("0.3.0", "--notes-url", "https://example.org/\x07"), "https"),
        (("0.3.0", "--product", "Bad Name"), "product"),
        (("0.2.3",), "already listed"),
        (("banana", "--product", "postgresql"), "invalid version"),
    ]:
        result = run_cli("release", "add", *bad, "--dsn", collector_dsn, check=False)
        assert result.returncode == 1 and message in result.stderr, (bad, result.stderr)
    for series in ("0.x", "", "1.2.3.4"):
        result = run_cli("release", "eol", series, "--dsn", collector_dsn, check=False)
        assert result.returncode == 1 and "series" in result.stderr, series
    again = run_cli("release", "eol", "0.1", "--dsn", collector_dsn, check=False)
    assert again.returncode == 1 and "already end of life" in again.stderr
    withdrawn = run_cli("release", "eol", "0.1", "--withdraw", "--dsn", collector_dsn).stdout.strip()
    assert withdrawn == "telemetry 0.1.x: supported again"
    removed = run_cli("release", "remove", "15.21", "--product", "postgresql", "--dsn", collector_dsn)
    assert removed.stdout.strip() == "removed postgresql 15.21"
    assert "15.21" not in run_cli("release", "list", "--dsn", collector_dsn).stdout


def answer_to(collector: Any, **fields: Any) -> dict[str, Any]:
    response = collector.post(make_report(**fields))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    protocol.parse_answer(response.content)  # what the extension accepts
    return body


def products(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p.pop("product"): p for p in body["products"]}


def test_the_answer_tells_each_listed_product(collector: Any, collector_dsn: str) -> None:
    for version, options in [
        ("0.1.0", ()),
        ("0.2.0", ()),
        ("0.2.3", ("--notes-url", NOTES.format("0.2.3"))),
        ("0.3.0", ("--security", "--notes-url", NOTES.format("0.3.0"))),
        ("15.20", ("--product", "postgresql")),
        ("15.21", ("--product", "postgresql", "--security", "--notes-url", NOTES.format("pg15.21"))),
        ("18.1", ("--product", "postgresql")),
        ("13.22", ("--product", "postgresql")),
        ("2.17.3", ("--product", "timescaledb", "--security")),
        ("2.18.0", ("--product", "timescaledb")),
    ]:
        add(collector_dsn, version, *options)
    run_cli("release", "eol", "0.1", "--dsn", collector_dsn)
    run_cli("release", "eol", "13", "--product", "postgresql", "--dsn", collector_dsn)

    # On the newest of its series, with a newer release that fixes security issues.
    body = answer_to(
        collector,
        extension_version="0.2.3",
        postgresql_version="15.21",
        extensions={"versions": {"plpgsql": "1.0", "timescaledb": "2.18.0"}, "num_other": 0},
    )
    assert (body["latest_version"], body["up_to_date"]) == ("0.3.0", False)
    told = products(body)
    assert list(told) == ["telemetry", "postgresql", "timescaledb"]  # plpgsql is not listed
    assert told["telemetry"] == {
        "installed": "0.2.3",
        "newest": "0.3.0",
        "newest_in_series": "0.2.3",
        "security": True,
        "security_in_series": False,
        "end_of_life": False,
        "notes_url": NOTES.format("0.3.0"),
    }
    assert told["postgresql"] == {
        "installed": "15.21",
        "newest": "18.1",
        "newest_in_series": "15.21",
        "security": False,
        "security_in_series": False,
        "end_of_life": False,
        "notes_url": None,
    }
    assert told["timescaledb"]["security"] is False and told["timescaledb"]["newest"] == "2.18.0"

    # Security in the PostgreSQL minor: 15.8 -> 15.21; an extension behind a security release.
    told = products(
        answer_to(
            collector,
            extension_version="0.3.0",
            postgresql_version="15.8",
            extensions={"versions": {"timescaledb": "2.17.2"}, "num_other": 0},
        )
    )
    assert told["telemetry"]["security"] is False and told["telemetry"]["newest"] == "0.3.0"
    assert told["postgresql"] == {
        "installed": "15.8",
        "newest": "18.1",
        "newest_in_series": "15.21",
        "security": True,
        "security_in_series": True,
        "end_of_life": False,
        "notes_url": NOTES.format("pg15.21"),
    }
    assert told["timescaledb"]["security"] is True and told["timescaledb"]["newest_in_series"] == "2.17.3"

    # End of life: 0.1.x and PostgreSQL 13.x.
    told = products(answer_to(collector, extension_version="0.1.0", postgresql_version="13.5"))
    assert told["telemetry"]["end_of_life"] is True and told["telemetry"]["newest_in_series"] == "0.1.0"
    assert told["telemetry"]["notes_url"] == NOTES.format("0.3.0")  # end of life: go to the newest
    assert told["postgresql"]["end_of_life"] is True and told["postgresql"]["newest_in_series"] == "13.22"
    # A PostgreSQL major the vendor lists nothing of: no series step.
    told = products(answer_to(collector, postgresql_version="17.5"))
    assert told["postgresql"]["newest_in_series"] is None and told["postgresql"]["security"] is False


def test_the_two_old_fields_are_unchanged(collector: Any, collector_dsn: str) -> None:
    """What 0.1.0 and 0.2.0 read: latest_version and up_to_date, exactly as before."""
    body = answer_to(collector, extension_version="0.2.0")
    assert body == {"latest_version": "0.2.0", "up_to_date": True, "products": []}
    add(collector_dsn, "0.2.0")
    add(collector_dsn, "0.3.0rc1", "--security")
    add(collector_dsn, "15.21", "--product", "postgresql", "--security")
    body = answer_to(collector, extension_version="0.2.0")
    assert (body["latest_version"], body["up_to_date"]) == ("0.2.0", True)
    # A pre-release security fix does not nag a final release.
    assert products(body)["telemetry"]["security"] is False


def listed(*releases: tuple[str, bool]) -> tuple[advisories.Listed, ...]:
    return tuple(advisories.Listed(Version(v), security, NOTES.format(v)) for v, security in releases)


@pytest.mark.parametrize(
    ("installed", "releases", "step", "security_in_series"),
    [
        # The series has the fix (backported): its newest is the step.
        ("0.2.0", [("0.2.3", True), ("0.3.1", True)], "0.2.3", True),
        # Only a newer series has the fix: the series' newest would not take it, so the newest is the step.
        ("0.2.0", [("0.2.3", False), ("0.3.1", True)], "0.3.1", False),
        # No security fix: the routine patch step.
        ("0.2.0", [("0.2.3", False), ("0.3.1", False)], "0.2.3", False),
        # Already on the newest of its series: the newest.
        ("0.2.3", [("0.2.3", False), ("0.3.1", False)], "0.3.1", False),
    ],
)
def test_the_step_takes_the_security_fix(
    installed: str, releases: list[tuple[str, bool]], step: str, security_in_series: bool
) -> None:
    advice = advisories.Book({"telemetry": listed(*releases)}).advise("telemetry", installed)
    assert advice is not None
    assert advice.security_in_series is security_in_series
    assert advice.notes_url == NOTES.format(step)  # the notes of the release to go to


def test_products_are_bounded() -> None:
    """However many listed extensions a report names, the answer tells at most MAX_PRODUCTS."""
    names = [f"ext{i:03d}" for i in range(protocol.MAX_PRODUCTS + 10)]
    book = advisories.Book({name: (advisories.Listed(Version("1.1"), False, None),) for name in names})
    told = book.products(advisories.report_versions("0.3.0", "15.20", [(name, "1.0") for name in names]))
    assert len(told) == protocol.MAX_PRODUCTS
    assert told[0].product == "ext000"


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://www.postgresql.org/docs/release/15.21/", True),
        ("https://example.org:8443/notes?v=1#top", True),
        ("http://example.org/notes", False),
        ("https://", False),
        ("javascript:alert(1)", False),
        ("https://example.org/\x1b[31m", False),
        ("https://example.org/a\nb", False),
        ("https://example.org/" + "a" * 600, False),
    ],
)
def test_notes_links_are_https_and_printable(url: str, valid: bool) -> None:
    if valid:
        assert protocol.check_notes_url(url) == url
    else:
        with pytest.raises(protocol.ProtocolError):
            protocol.check_notes_url(url)


def test_the_fleet_shows_security_end_of_life_and_minor_lag(
    collector_dsn: str, collector_db: psycopg.Connection[Any], start_vendor: Any
) -> None:
    t = today(collector_db)
    for version, options in [
        ("0.2.0", ()),
        ("0.3.0", ("--security",)),
        ("15.19", ("--product", "postgresql")),
        ("15.20", ("--product", "postgresql")),
        ("15.21", ("--product", "postgresql", "--security")),
    ]:
        add(collector_dsn, version, *options)
    run_cli("release", "eol", "0.1", "--dsn", collector_dsn)
    fleet = [
        ("0.3.0", "15.21"),  # current
        ("0.3.0", "15.19"),  # two minors behind, one a security fix
        ("0.2.0", "15.21"),  # the extension has a security fix outstanding
        ("0.1.0", "15.21"),  # end of life (and behind a security fix)
        ("0.3.0", "16.4"),  # a major the vendor lists nothing of
    ]
    for version, postgresql in fleet:
        store(collector_db, at(t, 1), extension_version=version, postgresql_version=postgresql)
    roll_up(collector_dsn, until=at(t, 23))
    vendor = start_vendor()
    data = requests.get(f"{vendor.url}/v1/fleet?days=7", timeout=30).json()

    advisories = data["advisories"]
    assert advisories["now"] == {"security_share": 0.6, "end_of_life_share": 0.2}
    assert advisories["security_share"][-1] == 0.6 and advisories["end_of_life_share"][-1] == 0.2
    assert advisories["security_share"][0] is None  # nothing rolled up that day
    lag = {row["value"]: row["databases"] for row in data["now"]["postgresql_minor_lag"]}
    assert lag == {"on the newest minor": 3, "2 minor releases behind": 1, "major not listed": 1}


def test_rows_written_by_hand_never_reach_an_answer(collector: Any, collector_db: psycopg.Connection[Any]) -> None:
    """The table's checks are looser than the protocol: a link with a control character is left out."""
    collector_db.execute(
        """INSERT INTO collector.releases (product, version, notes_url)
           VALUES ('telemetry', '9.0.0', 'https://example.org/' || chr(7)), ('telemetry', 'banana', NULL)"""
    )
    body = answer_to(collector, extension_version="0.2.0")
    assert body["latest_version"] == "9.0.0"
    assert products(body)["telemetry"]["notes_url"] is None


def test_answers_are_remembered_per_book_and_bounded() -> None:
    """Within the ttl the book is read once; a changed book gives new answers; at most MAX_CACHED_ANSWERS kept."""
    now = [0.0]
    newest = ["0.3.0"]
    loads: list[str] = []

    async def load() -> advisories.Book:
        loads.append(newest[0])
        listed = advisories.Listed(Version(newest[0]), False, None)
        return advisories.Book({protocol.PRODUCT_SELF: (listed,)})

    cache = advisories.AnswerCache(load, ttl=10, clock=lambda: now[0])

    async def latest(sender: str = "0.2.0") -> str:
        body = await cache.answer(sender, "15.8", ())
        assert body is not None
        return str(json.loads(body)["latest_version"])

    assert asyncio.run(latest()) == "0.3.0"
    newest[0] = "0.4.0"
    now[0] = 9.0
    assert asyncio.run(latest()) == "0.3.0" and loads == ["0.3.0"]
    now[0] = 10.0
    assert asyncio.run(latest()) == "0.4.0" and loads == ["0.3.0", "0.4.0"]

    async def many() -> None:
        for patch in range(advisories.MAX_CACHED_ANSWERS + 10):
            await cache.answer(f"0.2.{patch}", "15.8", ())

    asyncio.run(many())
    assert cache._answers.cache_info().currsize == advisories.MAX_CACHED_ANSWERS
