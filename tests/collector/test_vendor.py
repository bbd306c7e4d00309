"""serve-vendor: its own process and listener, loopback or a token, a statement timeout."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from port_for import get_port

from telemetry_collector import cli
from telemetry_collector.vendor.app import POOL
from tests.collector.helpers import cli_env, run_cli
from tests.collector.vendor_helpers import at, store, today

TOKEN = "s3cret-vendor-token-0123"


def start_serve_vendor(dsn: str, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    port = get_port(None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "telemetry_collector", "serve-vendor", "--dsn", dsn, "--port", str(port), *args],
        env={**cli_env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/healthz", timeout=2)
            return proc, url
        except requests.ConnectionError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"serve-vendor did not start:\n{proc.communicate()[0]}")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_refuses_a_public_address_without_a_token(collector_dsn: str, host: str) -> None:
    result = run_cli("serve-vendor", "--dsn", collector_dsn, "--host", host, check=False)
    assert result.returncode == 2
    assert f"refusing to serve the fleet on {host}" in result.stderr
    assert "TELEMETRY_VENDOR_TOKEN" in result.stderr


def test_refuses_a_short_token(collector_dsn: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    result = run_cli("serve-vendor", "--dsn", collector_dsn, "--token-file", str(token_file), check=False)
    assert result.returncode == 2 and "at least 16 characters" in result.stderr


def test_a_token_guards_every_route_but_health(collector_dsn: str, collector_db: psycopg.Connection[Any]) -> None:
    store(collector_db, at(today(collector_db) - dt.timedelta(days=1)))
    proc, url = start_serve_vendor(
        collector_dsn,
        "--host",
        "0.0.0.0",
        "--rollup-every-seconds",
        "1",
        "--settle-seconds",
        "0",
        env={"TELEMETRY_VENDOR_TOKEN": TOKEN},
    )
    try:
        for path in ("/", "/fleet.js", "/v1/fleet", "/v1/export/daily.csv"):
            refused = requests.get(f"{url}{path}", timeout=10)
            assert refused.status_code == 401, path
            assert refused.headers["WWW-Authenticate"].startswith('Basic realm="telemetry fleet"')
            assert refused.json()["error"] == "unauthorized"
        for wrong in ("Bearer nope", f"Bearer {TOKEN}x", "Basic !!!", f"Token {TOKEN}", TOKEN):
            assert requests.get(f"{url}/v1/fleet", headers={"Authorization": wrong}, timeout=10).status_code == 401
        assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        basic = {"Authorization": "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()}
        assert requests.get(f"{url}/", headers=basic, timeout=10).status_code == 200
        # serve-vendor rolls up by itself every --rollup-every-seconds.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            data = requests.get(f"{url}/v1/fleet", headers=bearer, timeout=10).json()
            if data["active"]["last_7_days"] == 1:
                break
            time.sleep(0.3)
        assert data["active"] == {"last_7_days": 1, "last_30_days": 1}
    finally:
        log = stop(proc)
    # A token on a public address without TLS: the operator is told, once.
    assert log.count("the token travels in clear text") == 1, log
    assert "127.0.0.1" not in log.replace(f"http://0.0.0.0:{url.rsplit(':', 1)[1]}", "")  # no client address


def test_a_slow_read_is_cut_by_the_statement_timeout(collector_db: psycopg.Connection[Any], start_vendor: Any) -> None:
    vendor = start_vendor(statement_timeout_ms=300)
    assert vendor.get("/v1/fleet").status_code == 200
    held = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with collector_db.transaction():
            collector_db.execute("LOCK TABLE collector.rollup_state IN ACCESS EXCLUSIVE MODE")
            held.set()
            release.wait(30)

    locker = threading.Thread(target=hold_lock)
    locker.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        blocked = vendor.get("/v1/fleet")
        waited = time.monotonic() - started
    finally:
        release.set()
        locker.join(30)
    assert blocked.status_code == 503
    assert blocked.json()["error"] == "storage_unavailable" and blocked.headers["Retry-After"] == "30"
    assert waited < 10  # the timeout, not the lock holder, ended the wait
    assert vendor.get("/v1/fleet").status_code == 200


def test_vendor_sessions_are_read_only_and_named(collector_db: psycopg.Connection[Any], start_vendor: Any) -> None:
    vendor = start_vendor()
    assert vendor.get("/healthz").status_code == 200

    async def write_in_a_fleet_session() -> str:
        assert vendor._runner is not None
        async with vendor._runner.app[POOL].connection() as conn:
            try:
                await conn.execute("INSERT INTO collector.releases (version, added_at) VALUES ('9.9.9', now())")
            except psycopg.errors.ReadOnlySqlTransaction as exc:
                return str(exc)
            return "written"

    refused = asyncio.run_coroutine_threadsafe(write_in_a_fleet_session(), vendor._loop_thread.loop).result(30)
    assert "read-only transaction" in refused
    assert collector_db.execute("SELECT count(*) FROM collector.releases WHERE version = '9.9.9'").fetchone() == (0,)
    names = {
        row[0]
        for row in collector_db.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
    }
    assert "telemetry_vendor" in names


def test_every_vendor_option_has_help() -> None:
    parser = cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("rollup", "serve-vendor"):
        options = [a for a in sub.choices[command]._actions if a.option_strings and a.dest != "help"]
        assert options
        for action in options:
            assert action.help and action.help != argparse.SUPPRESS, (command, action.option_strings)
    usage = run_cli("serve-vendor", "--help").stdout
    assert "--token-file" in usage and "--statement-timeout-ms" in usage
