"""A dump of a database on an earlier release restores on a server whose default is the current version."""

from __future__ import annotations

import subprocess

import pytest

from tests.cluster import Cluster
from tests.extension.upgrade import catalog
from tests.extension.upgrade.names import BY_RELEASE, CURRENT
from tests.extension.upgrade.released import current_version, earlier_releases
from tests.extension.upgrade.state import call, extension_version
from tests.helpers import report


@pytest.mark.parametrize("release", earlier_releases())
def test_dump_of_an_earlier_release_restores_as_the_current_version(release: str, upgrade_cluster: Cluster) -> None:
    c = upgrade_cluster
    names = BY_RELEASE[release]
    bindir = c.tree.bindir
    conn_args = ["-h", str(c.socketdir), "-p", str(c.port), "-U", c.user]
    with c.database("dumped", extension=False) as source:
        source.execute(f"CREATE EXTENSION telemetry VERSION '{release}' CASCADE")
        call(source, names.set_option, "interval", "3 days")
        call(source, names.set_metric_enabled, "uptime_days", False)
        original = report(source)
        dump = subprocess.run(
            [str(bindir / "pg_dump"), *conn_args, "-Fc", "dumped"], check=True, capture_output=True
        ).stdout
    with c.database("restored", extension=False) as restored, c.database("fresh_for_restore") as fresh:
        result = subprocess.run(
            [str(bindir / "pg_restore"), *conn_args, "--exit-on-error", "-d", "restored"],
            input=dump,
            capture_output=True,
            check=False,
        )
        assert (result.returncode, result.stderr.decode()) == (0, "")
        assert extension_version(restored) == current_version()
        shown = report(restored)
        assert shown["extension_version"] == current_version()
        assert shown["exported_db_uuid"] == original["exported_db_uuid"]
        assert shown["installed_time"] == original["installed_time"]
        assert shown["db_uuid"] != original["db_uuid"]
        # The DBA's choices travel with the dump.
        assert "uptime_days" not in shown
        options = restored.execute("SELECT name, value FROM _telemetry.options").fetchall()
        assert options == [("interval", "3 days")]
        assert restored.execute(f"SELECT enabled FROM {CURRENT.metrics_view} WHERE key = 'uptime_days'").fetchone() == (
            False,
        )
        # And the restored extension is the current one, exactly.
        assert catalog.differences(catalog.dump(restored), catalog.dump(fresh)) == ""
