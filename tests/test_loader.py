"""What loading the package does to a session: sys.path as it was, one version per process."""

from __future__ import annotations

import psycopg
import pytest

from tests.cluster import Cluster


def test_sys_path_is_left_as_it_was(cluster: Cluster, db) -> None:
    with cluster.connect(db.info.dbname) as conn:
        conn.execute("DO LANGUAGE plpython3u $$ import sys; GD['path_before'] = list(sys.path) $$")
        conn.execute("SELECT get_report()")
        conn.execute("SELECT telemetry_tick()")
        conn.execute(
            """DO LANGUAGE plpython3u $$
import sys
if sys.path != GD['path_before']:
    plpy.error('sys.path changed: %r' % [p for p in sys.path if p not in GD['path_before']])
if 'telemetry_extension.entry' not in sys.modules:
    plpy.error('the package was not loaded')
$$"""
        )


def test_a_session_running_the_0_1_0_package_is_told_to_reconnect(cluster: Cluster, db) -> None:
    with cluster.connect(db.info.dbname) as conn:
        # What 0.1.0's loader leaves: its entry module, a top-level `telemetry`, in GD["telemetry"].
        conn.execute(
            """DO LANGUAGE plpython3u $$
import types
entry_0_1_0 = types.ModuleType('telemetry.entry')
entry_0_1_0.VERSION = '0.1.0'
entry_0_1_0.checked = lambda version: entry_0_1_0
GD['telemetry'] = entry_0_1_0
$$"""
        )
        with pytest.raises(psycopg.errors.InternalError_) as raised:
            conn.execute("SELECT get_report()")
        assert "another version of the extension's Python package" in str(raised.value)
        assert "Reconnect" in (raised.value.diag.message_hint or "")
        conn.execute(
            """DO LANGUAGE plpython3u $$
import sys
if 'telemetry_extension' in sys.modules:
    plpy.error('a second package was imported')
$$"""
        )


def test_a_package_loaded_from_another_directory_is_refused(cluster: Cluster, db) -> None:
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
