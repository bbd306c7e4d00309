"""Release files agree with telemetry.control, where the version lives."""

from __future__ import annotations

import json

from tests.helpers import REPO, control_version


def test_meta_json_versions_are_the_control_files() -> None:
    meta = json.loads((REPO / "META.json").read_text())
    assert meta["version"] == control_version()
    assert {name: spec["version"] for name, spec in meta["provides"].items()} == {"telemetry": control_version()}
    assert meta["meta-spec"]["version"] == "1.0.0"
    assert meta["license"] == "postgresql"
    for spec in meta["provides"].values():
        assert (REPO / spec["file"]).is_file() and (REPO / spec["docfile"]).is_file()


def test_license_is_the_postgresql_license() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("PostgreSQL License\n")
    assert "Copyright (c) 2026, the telemetry authors" in text
