"""The collector as an operator installs it: `pip install <checkout>` into a clean virtualenv.

Only the runtime dependencies come along (from its hashed lock file, nothing unverified); the installed
`telemetry-collector` command migrates, serves the landing page and takes a report.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import requests

from tests.collector.helpers import REPO, make_report
from tests.collector.test_operator_metrics import free_port, wait_for

DEV_TOOLS = ("pytest", "mypy", "ruff", "pytest-postgresql", "trustme")


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH: what runs is what pip installed, not the source tree."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_a_clean_virtualenv_installs_and_runs_the_command(tmp_path: Path, collector_dsn: str) -> None:
    venv = tmp_path / "venv"
    env = _clean_env()
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    # As the README says: the locked dependencies (every one checked by its hash), then the package.
    lock = REPO / "python" / "requirements-collector.lock"
    install = [*pip, "install", "--quiet"]
    subprocess.run([*install, "--require-hashes", "-r", str(lock)], check=True, env=env, timeout=900, cwd=tmp_path)
    subprocess.run(
        [*install, "--no-deps", "--no-build-isolation", str(REPO)], check=True, env=env, timeout=300, cwd=tmp_path
    )

    installed = subprocess.run([*pip, "list", "--format=freeze"], check=True, env=env, text=True, capture_output=True)
    pins = dict(_normalized(line).split("==") for line in installed.stdout.splitlines() if "==" in line)
    names = set(pins)
    assert {"telemetry-collector", "aiohttp", "iptocc", "prometheus-client", "psycopg-pool"} <= names
    assert not names & set(DEV_TOOLS), names & set(DEV_TOOLS)
    required = (REPO / "python" / "requirements-collector.txt").read_text().splitlines()
    for line in (r for r in required if r and not r.startswith("#")):
        name, version = _normalized(line).split("==")
        assert pins[name.split("[")[0]] == version, line

    command = str(venv / "bin" / "telemetry-collector")
    usage = subprocess.run([command, "--help"], check=True, env=env, text=True, capture_output=True, cwd=tmp_path)
    assert usage.stdout.startswith("usage: telemetry-collector ")
    assert "serve" in usage.stdout and "erase" in usage.stdout
    subprocess.run([command, "migrate", "--dsn", collector_dsn], check=True, env=env, timeout=120, cwd=tmp_path)

    port = free_port()
    serve = subprocess.Popen(
        [command, "serve", "--dsn", collector_dsn, "--port", str(port), "--operator-name", "Installed Ltd"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(f"{url}/healthz"), "the installed edge to start")
        page = requests.get(f"{url}/", timeout=30)
        assert page.status_code == 200 and "Installed Ltd" in page.text
        assert requests.post(f"{url}/v1/report", json=make_report(), timeout=30).status_code == 200
    finally:
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0, output
    assert (
        str(venv)
        in subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import telemetry_collector; print(telemetry_collector.__file__)"],
            check=True,
            env=env,
            text=True,
            capture_output=True,
            cwd=tmp_path,
        ).stdout
    )


def _normalized(requirement: str) -> str:
    return requirement.lower().replace("_", "-")


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False
