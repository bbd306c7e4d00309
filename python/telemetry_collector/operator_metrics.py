"""Operator metrics in Prometheus' text format, on a listener of their own (loopback only).

`serve --metrics-port PORT` and `serve-fleet --metrics-port PORT` add a second
listener on 127.0.0.1:PORT answering GET /metrics; the public port never serves
them.  Counts only: no label holds anything a client sent but the route it
matched, the status, and the edge's own refusal codes.

Worker processes (`serve --workers N`): prometheus-client's multiprocess mode.
Before forking, `serve` points PROMETHEUS_MULTIPROC_DIR at a fresh directory
(use_multiprocess_dir); each worker then writes its values to memory-mapped
files there, and every worker's metrics listener (all bound to the same port
with SO_REUSEPORT) answers with the sum over all of them, so a scrape that
lands on any worker sees the whole edge.  Open connections are a `livesum`
gauge, sampled each second.  With one process the values stay in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import prometheus_client
import prometheus_client.values
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from telemetry_collector.web import route_of

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HOST = "127.0.0.1"
REPORT_ROUTE = "/v1/report"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def use_multiprocess_dir() -> str:
    """A fresh directory for the workers' values, named in the environment before they fork.

    prometheus-client picks its value class when it is imported; no metric exists yet
    in this parent process, so choosing again here is what importing it afresh would do."""
    path = tempfile.mkdtemp(prefix="telemetry-collector-metrics-")
    os.environ[MULTIPROC_ENV] = path
    prometheus_client.values.ValueClass = prometheus_client.values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def remove_multiprocess_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _registry() -> tuple[CollectorRegistry, CollectorRegistry | None]:
    """The registry a scrape reads, and the one metrics register in (None: the shared files)."""
    exposed = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(exposed)  # type: ignore[no-untyped-call]
        return exposed, None
    return exposed, exposed


class EdgeMetrics:
    def __init__(self) -> None:
        self.registry, into = _registry()
        prefix = "telemetry_collector"
        self.accepted = Counter(f"{prefix}_reports_accepted", "Reports stored", registry=into)
        self.refused = Counter(
            f"{prefix}_reports_refused",
            "Reports refused, by the error code of the answer (rate_limited, invalid_json, ...)",
            ["reason"],
            registry=into,
        )
        self.rate_limited = Counter(f"{prefix}_reports_rate_limited", "Reports answered 429", registry=into)
        self.dropped_keys = Counter(
            f"{prefix}_unknown_keys_dropped", "Keys outside the field dictionary dropped from reports", registry=into
        )
        self.batch_size = Histogram(
            f"{prefix}_write_batch_reports",
            "Reports per batched write (one COPY, one commit)",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=into,
        )
        self.write_seconds = Histogram(
            f"{prefix}_write_seconds",
            "Seconds per batched write, pool wait included",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=into,
        )
        self.open_connections = Gauge(
            f"{prefix}_open_connections",
            "Open client connections on the public port (sampled each second)",
            registry=into,
            multiprocess_mode="livesum",
        )
        self.connections: Callable[[], int] | None = None

    def observe_write(self, rows: int, seconds: float) -> None:
        self.batch_size.observe(rows)
        self.write_seconds.observe(seconds)


class VendorMetrics:
    def __init__(self) -> None:
        self.registry, into = _registry()
        self.requests = Counter(
            "telemetry_vendor_requests", "Requests answered, by route and status", ["route", "status"], registry=into
        )
        self.seconds = Histogram(
            "telemetry_vendor_request_seconds",
            "Seconds to answer, by route",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=into,
        )


EDGE = web.AppKey("edge_metrics", EdgeMetrics)
VENDOR = web.AppKey("vendor_metrics", VendorMetrics)
LISTENER = web.AppKey("metrics_listener", list[str])


def _error_code(response: web.StreamResponse) -> str:
    body = response.body if isinstance(response, web.Response) else None
    try:
        code = json.loads(body)["error"] if isinstance(body, bytes) else None
    except (ValueError, KeyError, TypeError):
        code = None
    return code if isinstance(code, str) and code.isidentifier() else "other"


@web.middleware
async def _count_reports(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.method == "POST" and route_of(request) == REPORT_ROUTE:
        metrics = request.app[EDGE]
        code = "" if response.status == 200 else _error_code(response)
        if response.status == 200 or code == "no_release":  # stored; the answer only lacks a release
            metrics.accepted.inc()
        else:
            metrics.refused.labels(code).inc()
            if response.status == 429:
                metrics.rate_limited.inc()
    return response


@web.middleware
async def _count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    metrics, route = request.app[VENDOR], route_of(request)
    metrics.requests.labels(route, str(response.status)).inc()
    metrics.seconds.labels(route).observe(time.perf_counter() - started)
    return response


def attach_edge(app: web.Application, port: int | None) -> EdgeMetrics:
    """Count the edge's reports (outermost middleware: it sees the final answer) and serve them on `port`."""
    metrics = EdgeMetrics()
    app[EDGE] = metrics
    app.middlewares.insert(0, _count_reports)
    if port is not None:
        app[LISTENER] = []
        app.cleanup_ctx.append(_listener(metrics.registry, port, LISTENER, _sample_connections))
    return metrics


def attach_vendor(app: web.Application, port: int | None) -> None:
    if port is None:
        return
    metrics = VendorMetrics()
    app[VENDOR] = metrics
    app[LISTENER] = []
    app.middlewares.insert(0, _count_requests)
    app.cleanup_ctx.append(_listener(metrics.registry, port, LISTENER, None))


async def _sample_connections(app: web.Application) -> None:
    metrics = app[EDGE]
    while True:
        if metrics.connections is not None:
            metrics.open_connections.set(metrics.connections())
        await asyncio.sleep(1.0)


def _listener(
    registry: CollectorRegistry,
    port: int,
    urls: web.AppKey[list[str]],
    sampler: Callable[[web.Application], Coroutine[Any, Any, None]] | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def get_metrics(request: web.Request) -> web.Response:
        body = prometheus_client.generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", get_metrics)
        runner = web.AppRunner(metrics_app, access_log=None, handle_signals=False)
        await runner.setup()
        reuse = bool(os.environ.get(MULTIPROC_ENV))  # every worker listens; each answers for all
        site = web.TCPSite(runner, HOST, port, reuse_port=reuse or None)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await site.start()
            host, bound = runner.addresses[0][:2]
            app[urls].append(f"http://{host}:{bound}/metrics")
            if sampler is not None:
                tasks.append(asyncio.create_task(sampler(app)))
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runner.cleanup()

    return lifecycle
