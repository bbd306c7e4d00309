"""What may import what: the collector shares only the protocol; status and get_report() never load the sender."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PYTHON = Path(__file__).resolve().parent.parent / "python"


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level names each module of `package` imports, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((PYTHON / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(PYTHON))] = names
    return found


def offenders(package: str, forbidden: set[str]) -> list[str]:
    return [
        f"{path} imports {sorted(names & forbidden)}"
        for path, names in imported_packages(package).items()
        if names & forbidden
    ]


def test_collector_imports_nothing_of_the_extension_but_the_protocol() -> None:
    assert imported_packages("telemetry_collector"), "no collector modules found"
    assert offenders("telemetry_collector", {"telemetry_extension", "telemetry"}) == []


def test_protocol_imports_neither_side() -> None:
    assert offenders("telemetry_protocol", {"telemetry_extension", "telemetry_collector", "telemetry"}) == []


def test_extension_never_imports_the_collector() -> None:
    assert offenders("telemetry_extension", {"telemetry_collector", "telemetry"}) == []


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PYTHON, check=True, capture_output=True, text=True, timeout=60
    )
    return set(result.stdout.split())


def test_status_and_the_report_do_not_load_the_sender() -> None:
    loaded = _modules_after("import telemetry_extension.entry, telemetry_extension.status")
    assert "telemetry_extension.job.schedule" in loaded
    assert {"requests", "urllib3", "telemetry_extension.job.sender", "telemetry_extension.job.tick"}.isdisjoint(loaded)


def test_the_job_package_imports_nothing() -> None:
    loaded = _modules_after("import telemetry_extension.job")
    assert {name for name in loaded if name.startswith("telemetry_extension")} == {
        "telemetry_extension",
        "telemetry_extension.job",
    }
