"""What loading the package does to a session: sys.path as it was, one version per process."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from tests.cluster import Cluster
from tests.extension.job.helpers import answer, configure, tick
from tests.extension.upgrade.released import install_release
from tests.helpers import report
from tests.pgtree import PgTree


def test_sys_path_is_left_as_it_was(cluster: Cluster, db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    """Also around `import requests` and the pinned packages: the tick is due, so it sends."""
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    configure(db, httpserver.url_for("/v1/report"))  # grace 0: due now
    with cluster.connect(db.info.dbname) as conn:
        conn.execute("DO LANGUAGE plpython3u $$ import sys; GD['path_before'] = list(sys.path) $$")
        conn.execute("SELECT get_report()")
        assert tick(conn)["outcome"] == "sent"
        conn.execute(
            """DO LANGUAGE plpython3u $$
import sys
if sys.path != GD['path_before']:
    plpy.error('sys.path changed: %r' % [p for p in sys.path if p not in GD['path_before']])
for name in ('telemetry_extension.entry', 'telemetry_extension.job.sender', 'requests'):
    if name not in sys.modules:
        plpy.error('not loaded: ' + name)
$$"""
        )
    assert len(httpserver.log) == 1


def test_a_session_running_the_0_1_0_package_is_told_to_reconnect(pg_tree: PgTree, cluster: Cluster) -> None:
    """0.1.0 as it shipped, loaded in a session; the extension updated from another one."""
    install_release(pg_tree, "0.1.0")
    with cluster.database("loader_0_1_0", extension=False) as session:
        session.execute("CREATE EXTENSION telemetry VERSION '0.1.0' CASCADE")
        assert report(session)["extension_version"] == "0.1.0"  # 0.1.0's loader ran in this session
        with cluster.connect("loader_0_1_0") as other:
            other.execute("ALTER EXTENSION telemetry UPDATE")
        with pytest.raises(psycopg.errors.InternalError_) as raised:
            session.execute("SELECT get_report()")
        assert "another version of the extension's Python package" in str(raised.value)
        assert "Reconnect" in (raised.value.diag.message_hint or "")
        session.execute(
            """DO LANGUAGE plpython3u $$
import sys
if 'telemetry_extension' in sys.modules:
    plpy.error('a second package was imported')
$$"""
        )


def test_a_package_loaded_from_another_directory_is_refused(cluster: Cluster, db: psycopg.Connection[Any]) -> None:
    with cluster.connect(db.info.dbname) as conn:
        conn.execute(
            """DO LANGUAGE plpython3u $$
import sys, types
other = types.ModuleType('telemetry_extension')
other.__file__ = '/nonexistent/telemetry/9.9.9/telemetry_extension/__init__.py'
sys.modules['telemetry_extension'] = other
$$"""
        )
        with pytest.raises(psycopg.errors.InternalError_, match="another version"):
            conn.execute("SELECT get_report()")
