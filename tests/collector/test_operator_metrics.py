"""Operator metrics: Prometheus text on a loopback listener of its own, scraped after real posts."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from telemetry_collector import operator_metrics
from tests.collector.helpers import Collector, cli_env, make_report


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def metrics_url(collector: Collector) -> str:
    assert collector._edge is not None
    (url,) = collector._edge.runner.app[operator_metrics.LISTENER]
    assert url.startswith("http://127.0.0.1:")
    return url


def wait_for(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_the_edge_counts_what_it_accepts_and_refuses(start_collector: Any) -> None:
    collector = start_collector(metrics_port=0, rate_limit_burst=1, rate_limit_per_hour=1)
    url = metrics_url(collector)
    assert collector.post(make_report()).status_code == 200
    assert collector.post(make_report(unknown_a=1, unknown_b=2)).status_code == 200
    again = make_report()
    assert collector.post(again).status_code == 200
    assert collector.post(again).status_code == 429  # the burst of one is spent
    assert collector.post(data=b"{not json").status_code == 400
    assert collector.post(make_report(data_volume="big")).status_code == 422

    with requests.Session() as session:  # one connection held open while scraping
        assert session.get(f"{collector.url}/healthz", timeout=30).status_code == 200
        wait_for(lambda: scrape(url)[("telemetry_collector_open_connections", ())] >= 1, "an open connection")
    values = scrape(url)

    assert values[("telemetry_collector_reports_accepted_total", ())] == 3
    refused = {labels[0][1]: n for (name, labels), n in values.items() if name.endswith("reports_refused_total")}
    assert refused == {"rate_limited": 1, "invalid_json": 1, "invalid_report": 1}
    assert values[("telemetry_collector_reports_rate_limited_total", ())] == 1
    assert values[("telemetry_collector_unknown_keys_dropped_total", ())] == 2
    assert values[("telemetry_collector_write_batch_reports_sum", ())] == 3  # every stored report, in some batch
    assert (
        values[("telemetry_collector_write_seconds_count", ())]
        == values[("telemetry_collector_write_batch_reports_count", ())]
    )
    # Never on the public port.
    public = collector.get("/metrics")
    assert public.status_code == 404 and "telemetry_collector" not in public.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_worker_processes_are_summed_in_every_scrape(collector_dsn: str) -> None:
    port, metrics_port = free_port(), free_port()
    before = set(Path(tempfile.gettempdir()).glob("telemetry-collector-metrics-*"))
    args = ["serve", "--dsn", collector_dsn, "--port", str(port), "--metrics-port", str(metrics_port)]
    serve = subprocess.Popen(
        [sys.executable, "-m", "telemetry_collector", *args, "--workers", "2", "--no-access-log"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), "the edge to start")
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_for(lambda: _answers(url), "the metrics listener")
        for _ in range(30):  # a new connection each: the kernel spreads them over both workers
            response = requests.post(f"http://127.0.0.1:{port}/v1/report", json=make_report(), timeout=30)
            assert response.status_code == 200
        for _ in range(10):  # each scrape a new connection: whichever worker answers, it counts all
            assert scrape(url)[("telemetry_collector_reports_accepted_total", ())] == 30
        assert set(Path(tempfile.gettempdir()).glob("telemetry-collector-metrics-*")) - before  # the workers' values
    finally:
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0, output
    assert output.count(f"metrics on http://127.0.0.1:{metrics_port}/metrics") == 2, output
    assert set(Path(tempfile.gettempdir()).glob("telemetry-collector-metrics-*")) <= before  # its values removed


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_the_fleet_service_counts_its_requests(start_vendor: Any) -> None:
    vendor = start_vendor(metrics_port=0)
    assert vendor.get("/v1/fleet").status_code == 200
    assert vendor.get(f"/v1/fleet?days={uuid.uuid4()}").status_code == 400
    assert vendor._site is not None
    (url,) = vendor._site.runner.app[operator_metrics.LISTENER]
    values = scrape(url)
    assert values[("telemetry_vendor_requests_total", (("route", "/v1/fleet"), ("status", "200")))] == 1
    assert values[("telemetry_vendor_requests_total", (("route", "/v1/fleet"), ("status", "400")))] == 1
    assert values[("telemetry_vendor_request_seconds_count", (("route", "/v1/fleet"),))] == 2
    assert vendor.get("/metrics").status_code in (401, 404)
