"""The version answer: the release list, its PEP 440 ordering, what each sender is told."""

from __future__ import annotations

from typing import Any

import pytest

import telemetry_protocol as protocol
from telemetry_collector.releases import newest
from tests.collector.helpers import make_report, run_cli


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        (["0.9.0", "0.10.0", "0.2.0"], "0.10.0"),
        (["0.2.0", "0.3.0rc1", "0.3.0.dev1"], "0.2.0"),  # prereleases are not "newest" while a final exists
        (["0.3.0b2", "0.3.0rc1", "0.3.0a1"], "0.3.0rc1"),  # ... unless there is no final at all
        (["0.2.0", "0.2.0.post1"], "0.2.0.post1"),
        (["1.0", "0.99.99"], "1.0"),
        ([], None),
    ],
)
def test_newest_release_ordering(versions: list[str], expected: str | None) -> None:
    assert newest(versions) == expected


def test_release_commands(collector_dsn: str) -> None:
    for version in ("0.9.0", "0.10.0", "0.11.0rc1", "0.2"):
        assert run_cli("release", "add", version, "--dsn", collector_dsn).stdout.strip() == f"added {version}"

    listing = run_cli("release", "list", "--dsn", collector_dsn).stdout.splitlines()
    assert listing[0] == "telemetry"
    assert [line[2:].split()[0] for line in listing[1:]] == ["0.11.0rc1", "0.10.0", "0.9.0", "0.2"]
    assert next(line for line in listing if line.startswith("*")).split()[1] == "0.10.0"

    duplicate = run_cli("release", "add", "0.10", "--dsn", collector_dsn, check=False)
    assert duplicate.returncode == 1
    assert "already listed" in duplicate.stderr
    for bad in ("banana", "1.0+local", ""):
        result = run_cli("release", "add", bad, "--dsn", collector_dsn, check=False)
        assert result.returncode == 1, bad
        assert "error:" in result.stderr

    assert run_cli("release", "remove", "0.2.0", "--dsn", collector_dsn).stdout.strip() == "removed 0.2"
    assert "0.2 " not in run_cli("release", "list", "--dsn", collector_dsn).stdout


def ask(collector: Any, sender_version: str) -> protocol.VersionAnswer:
    """The two fields every release reads (the products: test_advisories.py)."""
    response = collector.post(make_report(extension_version=sender_version))
    assert response.status_code == 200, response.text
    answer = protocol.parse_answer(response.content)
    return protocol.VersionAnswer(answer.latest_version, answer.up_to_date)


def test_each_report_is_answered_with_the_newest_release(collector: Any, collector_dsn: str) -> None:
    # Before any release is listed, nobody is told to upgrade.
    assert ask(collector, "0.1.0") == protocol.VersionAnswer("0.1.0", True)

    for version in ("0.9.0", "0.10.0", "0.11.0rc1"):
        run_cli("release", "add", version, "--dsn", collector_dsn)

    assert ask(collector, "0.9.0") == protocol.VersionAnswer("0.10.0", False)
    assert ask(collector, "0.10.0") == protocol.VersionAnswer("0.10.0", True)
    assert ask(collector, "0.10.0rc2") == protocol.VersionAnswer("0.10.0", False)
    assert ask(collector, "0.11.0rc1") == protocol.VersionAnswer("0.10.0", True)  # ahead of the newest final
    assert ask(collector, "0.9") == protocol.VersionAnswer("0.10.0", False)

    run_cli("release", "add", "0.11.0", "--dsn", collector_dsn)
    assert ask(collector, "0.11.0rc1") == protocol.VersionAnswer("0.11.0", False)
    assert ask(collector, "0.11.0") == protocol.VersionAnswer("0.11.0", True)


def test_a_sender_without_a_valid_version_gets_422(collector: Any) -> None:
    response = collector.post(make_report(extension_version="unknown"))
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_report"
