"""The operator's commands: migrate (idempotent, partitions) and serve."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import trustme
from port_for import get_port

from telemetry_collector.storage import MIGRATIONS, next_month, partition_name
from tests.collector.helpers import Collector, cli_env, make_report, run_cli


def this_month(conn: psycopg.Connection[Any]) -> dt.date:
    row = conn.execute("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date").fetchone()
    assert row is not None
    month: dt.date = row[0]
    return month


def test_migrate_is_idempotent_and_prepares_partitions(
    collector_dsn: str, collector_db: psycopg.Connection[Any]
) -> None:
    # The fixture ran `migrate --months-back 2` already.
    again = run_cli("migrate", "--dsn", collector_dsn, "--months-ahead", "2")
    assert "schema steps applied: none (up to date)" in again.stdout
    month = this_month(collector_db)
    months = (month, next_month(month), next_month(next_month(month)))
    for name in map(partition_name, months):
        assert name in again.stdout
    assert collector_db.execute("SELECT max(version) FROM collector.schema_migrations").fetchone() == (
        max(version for version, _ in MIGRATIONS),
    )
    strategy = collector_db.execute(
        "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'collector.reports'::regclass"
    ).fetchone()
    assert strategy == ("r",)


def test_a_missing_partition_is_created_on_demand(collector: Collector, collector_db: psycopg.Connection[Any]) -> None:
    current = f"collector.{partition_name(this_month(collector_db))}"
    collector_db.execute(f"DROP TABLE {current}")

    assert collector.post(make_report()).status_code == 200
    assert collector_db.execute(f"SELECT count(*) FROM {current}").fetchone() == (1,)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_serve_runs_the_service(collector_dsn: str, scheme: str, tmp_path: Path) -> None:
    run_cli("release", "add", "0.2.0", "--dsn", collector_dsn)
    port = get_port(None)
    tls: list[str] = []
    verify: bool | str = True
    if scheme == "https":
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        tls = ["--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.pem")]
        verify = str(tmp_path / "ca.pem")
    server = subprocess.Popen(
        [sys.executable, "-m", "telemetry_collector", "serve", "--dsn", collector_dsn, "--port", str(port), *tls],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{url}/healthz", timeout=5, verify=verify).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
            assert server.poll() is None, server.communicate()[0]
        response = requests.post(
            f"{url}/v1/report", json=make_report(extension_version="0.1.0"), timeout=10, verify=verify
        )
        answer = response.json()
        assert (answer["latest_version"], answer["up_to_date"]) == ("0.2.0", False)
        assert [p["product"] for p in answer["products"]] == ["telemetry"]
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
    access = [line for line in output.splitlines() if "telemetry_collector.access" in line]
    assert any("POST /v1/report 200" in line for line in access), output
    assert not any("127.0.0.1" in line for line in access)


def test_serve_refuses_an_unmigrated_database(cluster: Any) -> None:
    from tests.collector.helpers import dsn_for

    with cluster.database("collector_unmigrated", extension=False):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "telemetry_collector",
                "serve",
                "--port",
                str(get_port(None)),
                "--dsn",
                dsn_for(cluster, "collector_unmigrated"),
            ],
            check=False,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "run `python -m telemetry_collector migrate`" in result.stderr


def test_a_dsn_is_required() -> None:
    env = {k: v for k, v in cli_env().items() if k != "TELEMETRY_COLLECTOR_DSN"}
    result = subprocess.run(
        [sys.executable, "-m", "telemetry_collector", "migrate"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--dsn" in result.stderr


def test_an_unreachable_storage_is_503_with_retry_after(start_collector: Any, collector_dsn: str, cluster: Any) -> None:
    collector = start_collector(pool_timeout=1.0)
    assert collector.post(make_report()).status_code == 200
    name = str(psycopg.conninfo.conninfo_to_dict(collector_dsn)["dbname"])
    with cluster.connect() as admin:
        for attempt in range(20):  # the pool may reconnect in between: terminate again
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            try:
                admin.execute(
                    psycopg.sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        psycopg.sql.Identifier(name), psycopg.sql.Identifier(f"{name}_away")
                    )
                )
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 19:
                    raise
        try:
            statuses = {collector.post(make_report()).status_code for _ in range(3)}
            response = collector.post(make_report())
        finally:
            admin.execute(
                psycopg.sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    psycopg.sql.Identifier(f"{name}_away"), psycopg.sql.Identifier(name)
                )
            )
    assert statuses == {503}
    assert response.status_code == 503
    assert response.json()["error"] == "storage_unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_every_serve_flag_has_help_text() -> None:
    import argparse

    from telemetry_collector.cli import _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("serve", "prune", "erase", "migrate"):
        for action in commands.choices[name]._actions:
            assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (("serve", "--tls-cert", "server.pem"), "--tls-cert and --tls-key go together"),
        (("serve-fleet", "--tls-key", "server.pem"), "--tls-cert and --tls-key go together"),
        (("serve", "--port", "9000", "--metrics-port", "9000"), "--metrics-port must differ from --port"),
        (("serve-fleet", "--metrics-port", "8081"), "--metrics-port must differ from --port"),
        (("serve-fleet", "--statement-timeout-ms", "0"), "--statement-timeout-ms must be at least 1"),
        (("serve-fleet", "--rollup-every-seconds", "-1"), "--rollup-every-seconds must be at least 0"),
        (("serve", "--pool-max-size", "many"), "argument --pool-max-size: invalid int value: 'many'"),
        (("serve-fleet", "--header-timeout", "soon"), "argument --header-timeout: invalid float value: 'soon'"),
    ],
)
def test_options_that_cannot_work_are_refused_before_serving(args: tuple[str, ...], refusal: str) -> None:
    """Both services' settings are their options: each refusal names the option, and nothing starts."""
    result = run_cli(*args, "--dsn", "dbname=never_connected", check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert refusal in result.stderr
    assert "serving on" not in result.stdout
