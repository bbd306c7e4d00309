from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cluster import Cluster
from tests.pgtree import PG_CONFIG, PgTree, pg_major, pg_version, temporary_tree

# Folders of tests that do not depend on the PostgreSQL major: `make test` runs them once.
ANY_MAJOR_FOLDERS = {"collector"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        if item.path.relative_to(tests).parts[0] in ANY_MAJOR_FOLDERS:
            item.add_marker(pytest.mark.any_major)


# `make test` runs the suite once per supported major: say which one, at the top and
# just above pytest's closing summary line.
def pytest_report_header(config: pytest.Config) -> str:
    return f"postgresql: {pg_version()} (PG_CONFIG={PG_CONFIG})"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_sep("-", f"PostgreSQL {pg_version()}")


@pytest.fixture(scope="session", name="pg_major")
def pg_major_fixture() -> int:
    """The major of the PostgreSQL under test (PG_CONFIG), for what differs by major."""
    return pg_major()


@pytest.fixture(scope="session")
def pg_tree() -> Iterator[PgTree]:
    with temporary_tree("telemetry-test-") as tree:
        yield tree


@pytest.fixture(scope="session")
def cluster(pg_tree: PgTree) -> Iterator[Cluster]:
    """The shared cluster: telemetry and pg_cron preloaded, as the README's install says."""
    with Cluster(pg_tree) as c:
        yield c


_names = itertools.count()


@pytest.fixture
def db(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[psycopg.Connection[Any]]:
    """A new database with the extension created in it."""
    name = f"t{next(_names)}_{request.node.name[:40].lower()}".replace("[", "_").replace("]", "_").replace("-", "_")
    with cluster.database(name) as conn:
        yield conn
