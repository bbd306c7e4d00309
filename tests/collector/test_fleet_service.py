"""serve-fleet: its own process and listener, loopback or a token, a statement timeout."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import signal
import socket
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
from telemetry_collector.web import POOL
from tests.collector.fleet_helpers import at, known_fleet, roll_up, store, today
from tests.collector.helpers import cli_env, run_cli

TOKEN = "s3cret-vendor-token-0123"


def start_serve_fleet(dsn: str, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    port = get_port(None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "telemetry_collector", "serve-fleet", "--dsn", dsn, "--port", str(port), *args],
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
    raise AssertionError(f"serve-fleet did not start:\n{proc.communicate()[0]}")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_refuses_a_public_address_without_a_token(collector_dsn: str, host: str) -> None:
    result = run_cli("serve-fleet", "--dsn", collector_dsn, "--host", host, check=False)
    assert result.returncode == 2
    assert f"refusing to serve the fleet on {host}" in result.stderr
    assert "TELEMETRY_VENDOR_TOKEN" in result.stderr


def test_serve_vendor_is_still_accepted_as_the_former_name_of_serve_fleet(collector_dsn: str) -> None:
    result = run_cli("serve-vendor", "--dsn", collector_dsn, "--host", "192.0.2.1", check=False)
    assert result.returncode == 2
    assert "refusing to serve the fleet on 192.0.2.1" in result.stderr


def test_refuses_a_short_token(collector_dsn: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    result = run_cli("serve-fleet", "--dsn", collector_dsn, "--token-file", str(token_file), check=False)
    assert result.returncode == 2 and "at least 16 characters" in result.stderr


def test_a_token_guards_every_route_but_health(collector_dsn: str, collector_db: psycopg.Connection[Any]) -> None:
    store(collector_db, at(today(collector_db) - dt.timedelta(days=1)))
    proc, url = start_serve_fleet(
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
        # serve-fleet rolls up by itself every --rollup-every-seconds.
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
        assert vendor._site is not None
        async with vendor._site.runner.app[POOL].connection() as conn:
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
    for command in ("rollup", "serve-fleet"):
        options = [a for a in sub.choices[command]._actions if a.option_strings and a.dest != "help"]
        assert options
        for action in options:
            assert action.help and action.help != argparse.SUPPRESS, (command, action.option_strings)
    usage = run_cli("serve-fleet", "--help").stdout
    assert "--token-file" in usage and "--statement-timeout-ms" in usage


def test_bad_parameters_and_malformed_requests_get_json_and_nothing_is_echoed_or_logged(collector_dsn: str) -> None:
    proc, url = start_serve_fleet(collector_dsn)
    port = int(url.rsplit(":", 1)[1])
    client_ports: list[int] = []

    def exchange(data: bytes) -> tuple[int, bytes, bytes]:
        """From 127.0.0.7: the status, the head and the body of the answer."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.7", 0))
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            client_ports.append(sock.getsockname()[1])
            sock.sendall(data)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), head, body

    def get(target: bytes) -> bytes:
        return (
            b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode() + b"\r\nConnection: close\r\n\r\n"
        )

    try:
        for days in ("%C2%B2", "9" * 5000, "0", "-1", "1e3", "%EF%BC%91", "3661", "x" * 100 + "ECHOME"):
            for path in (b"/v1/fleet", b"/v1/export/activity.csv", b"/v1/export/daily.csv"):
                status, head, body = exchange(get(path + b"?days=" + days.encode()))
                assert status == 400, (path, days[:20])
                assert b"Content-Type: application/json" in head
                assert json.loads(body)["error"] == "bad_request"
                assert b"ECHOME" not in body and b"999" not in body and "²".encode() not in body
        malformed = {
            "bad request line": b"GARBAGE\x00\xff ECHOME\r\n\r\n",
            "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00ECHOME" + b"\r\n\r\n",
            "header overflow": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ECHOME" + b"a" * 9000 + b"\r\n\r\n",
            "bad header": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nECHOME\r\n\r\n",
        }
        for name, data in malformed.items():
            status, head, body = exchange(data)
            assert status == 400, name
            assert b"Content-Type: application/json" in head, (name, head)
            assert b"ECHOME" not in body, name
        assert exchange(get(b"/v1/fleet?days=30"))[0] == 200
    finally:
        log = stop(proc)
    assert "Traceback" not in log and " ERROR " not in log, log
    assert "127.0.0.7" not in log and "ECHOME" not in log
    assert not [line for line in log.splitlines() if any(f":{p}" in line or f" {p} " in line for p in client_ports)]


def test_without_a_token_only_the_loopback_names_it_listens_on_are_answered(start_vendor: Any) -> None:
    vendor = start_vendor()
    port = vendor.url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LOCALHOST.", f"localhost.:{port}"):
        assert vendor.get("/v1/fleet", headers={"Host": host}).status_code == 200, host
    for host in (f"rebound.attacker.example:{port}", "attacker.example", f"[::1]:{port}", f"127.0.0.2:{port}", "0"):
        refused = vendor.get("/v1/fleet", headers={"Host": host})
        assert refused.status_code == 421, host
        assert refused.json()["error"] == "misdirected_request"
        assert "attacker" not in refused.text
        assert vendor.get("/", headers={"Host": host}).status_code == 421, host
    # With a token, the token decides (a rebound page has no token).
    guarded = start_vendor(token=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/v1/fleet", headers={**bearer, "Host": "fleet.vendor.example"}).status_code == 200
    assert guarded.get("/v1/fleet", headers={"Host": "fleet.vendor.example"}).status_code == 401


def test_a_whole_read_is_cut_at_the_statement_timeout(
    collector_dsn: str, collector_db: psycopg.Connection[Any], start_vendor: Any
) -> None:
    """Each query of a fleet read stays under the timeout (1 s), their sum does not: the read is cut."""
    t, _ = known_fleet(collector_db)
    roll_up(collector_dsn, until=at(t, 23))
    vendor = start_vendor(statement_timeout_ms=1000)
    assert vendor.get("/v1/fleet").status_code == 200

    # The read's queries meet these tables in this order, each locked until its query has waited 0.6 s.
    tables = ("collector.rollup_counters", "collector.rollup_latest", "collector.rollup_daily")
    locks = [psycopg.connect(collector_dsn) for _ in tables]
    answers: list[requests.Response] = []
    reader = threading.Thread(target=lambda: answers.append(vendor.get("/v1/fleet")))
    try:
        for conn, table in zip(locks, tables, strict=True):
            conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        reader.start()
        for conn, table in zip(locks, tables, strict=True):
            if not _waited(collector_db, table, 0.6, reader):
                break  # the read was cut before its query met this table
            conn.rollback()
        reader.join(30)
    finally:
        for conn in locks:
            conn.close()
        reader.join(30)
    cut = answers[0]
    assert cut.status_code == 503, cut.status_code
    assert cut.json()["error"] == "storage_unavailable" and cut.headers["Retry-After"] == "30"
    assert vendor.get("/v1/fleet").status_code == 200


def _waited(conn: psycopg.Connection[Any], table: str, seconds: float, reader: threading.Thread) -> bool:
    """Whether a query waiting for `table`'s lock has waited `seconds` since its own start (polled);
    False if `reader` ends first."""
    deadline = time.monotonic() + 30
    while reader.is_alive() and time.monotonic() < deadline:
        row = conn.execute(
            """SELECT clock_timestamp() - a.query_start >= make_interval(secs => %s)
                 FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a USING (pid)
                WHERE NOT l.granted AND l.relation = %s::regclass""",
            (seconds, table),
        ).fetchone()
        if row is not None and row[0]:
            return True
        time.sleep(0.02)
    assert not reader.is_alive(), f"no query waited for {table}"
    return False


def test_every_answer_of_the_fleet_service_carries_its_security_headers(start_vendor: Any) -> None:
    vendor = start_vendor(token=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    answers = {
        "health": vendor.get("/healthz"),
        "no token": vendor.get("/v1/fleet"),
        "fleet": vendor.get("/v1/fleet", headers=bearer),
        "page": vendor.get("/", headers=bearer),
        "export": vendor.get("/v1/export/daily.csv", headers=bearer),
        "bad days": vendor.get("/v1/fleet?days=0", headers=bearer),
        "no route": vendor.get("/v1/nothing", headers=bearer),
    }
    assert [answer.status_code for answer in answers.values()] == [200, 401, 200, 200, 200, 400, 404]
    for name, answer in answers.items():
        headers = {
            key: answer.headers.get(key) for key in ("X-Content-Type-Options", "Referrer-Policy", "Cache-Control")
        }
        assert headers == {
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        }, name
