from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import Cluster
from tests.extension.upgrade.released import earlier_releases, install_release
from tests.pgtree import PgTree

# pg_cron lives in this database of the upgrade cluster (a pg_cron entry is part of the state kept).
CRON_DATABASE = "cron_updated"


@pytest.fixture(scope="session")
def release_tree(pg_tree: PgTree) -> PgTree:
    """The session's test tree with every earlier release's script and package installed beside ours."""
    for release in earlier_releases():
        install_release(pg_tree, release)
    return pg_tree


@pytest.fixture(scope="session")
def upgrade_cluster(release_tree: PgTree) -> Iterator[Cluster]:
    with Cluster(release_tree, name="upgrade", conf={"cron.database_name": f"'{CRON_DATABASE}'"}) as c:
        yield c
