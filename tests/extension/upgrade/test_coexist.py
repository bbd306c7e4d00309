"""Two versions in one cluster: each database runs its own release's code, never a mix."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.cluster import Cluster
from tests.extension.upgrade.released import current_version, earlier_releases
from tests.extension.upgrade.state import extension_version, update
from tests.helpers import Notices, report

RECONNECT = "Reconnect"  # in the error a session gets when its loaded package is another version


def package_dirs(conn: psycopg.Connection[Any]) -> list[str]:
    """The extension versions whose package this session's Python has loaded (from $libdir/telemetry/<version>/)."""
    notices = Notices(conn)
    conn.execute(
        """DO LANGUAGE plpython3u $$
import re, sys
files = [getattr(m, "__file__", None) or "" for n, m in list(sys.modules.items())
         if n.split(".")[0] in ("telemetry", "telemetry_extension")]
plpy.notice(" ".join(sorted({v for f in files for v in re.findall(r"/telemetry/([0-9][^/]*)/", f)})))
$$"""
    )
    [versions] = notices.of("NOTICE")
    return versions.split()


@pytest.mark.parametrize("release", earlier_releases())
def test_a_database_not_yet_updated_keeps_working_beside_an_updated_one(release: str, upgrade_cluster: Cluster) -> None:
    c = upgrade_cluster
    with (
        c.database("on_release", extension=False) as on_release,
        c.database("on_current", extension=False) as on_current,
    ):
        on_release.execute(f"CREATE EXTENSION telemetry VERSION '{release}' CASCADE")
        on_current.execute(f"CREATE EXTENSION telemetry VERSION '{release}' CASCADE")
        update(c, "on_current")
        # Both at once: sessions on each version, each with its own package.
        assert report(on_release)["extension_version"] == release
        with c.connect("on_release") as another:
            assert extension_version(another) == release
            assert report(another)["extension_version"] == release
            assert package_dirs(another) == [release]
        with c.connect("on_current") as updated:
            assert report(updated)["extension_version"] == current_version()
            assert package_dirs(updated) == [current_version()]


@pytest.mark.parametrize("release", earlier_releases())
def test_a_session_that_loaded_the_old_package_is_told_to_reconnect(release: str, upgrade_cluster: Cluster) -> None:
    c = upgrade_cluster
    with c.database("long_lived", extension=False) as session:
        session.execute(f"CREATE EXTENSION telemetry VERSION '{release}' CASCADE")
        before = report(session)
        assert before["extension_version"] == release

        # The update, run in this very session, is refused whole: nothing changes.
        with pytest.raises(psycopg.Error, match=RECONNECT):
            session.execute("ALTER EXTENSION telemetry UPDATE")
        assert extension_version(session) == release
        assert report(session)["extension_version"] == release

        update(c, "long_lived")  # from another session

        for _ in range(2):  # every call, not only the first: never the old code on the new SQL
            with pytest.raises(psycopg.Error, match=RECONNECT) as refused:
                session.execute("SELECT get_report()")
            assert release in str(refused.value) and current_version() in str(refused.value)
        with c.connect("long_lived") as reconnected:
            shown = report(reconnected)
            assert shown["extension_version"] == current_version()
            assert shown["db_uuid"] == before["db_uuid"]
