"""Batched writes across requests: concurrent reports go to PostgreSQL in one COPY.

Each request hands its row to `BatchWriter.store()` and waits until the row is
committed.  A few flusher tasks take whatever is pending (up to `max_batch`
rows) and write it with one COPY, one transaction and one WAL flush.  While
one batch commits the next one gathers, so an idle collector writes a single
report at once (no added delay) and a busy one writes hundreds per commit.
A request is answered only after its row is committed, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg_pool

from telemetry_collector import storage

log = logging.getLogger(__name__)

Row = tuple[Any, ...]


class BatchWriter:
    def __init__(
        self,
        pool: psycopg_pool.AsyncConnectionPool[Any],
        pool_timeout: float,
        max_batch: int = 500,
        flushers: int = 2,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self._observe = observe  # (rows, seconds) of each write: the operator metrics
        self._pool = pool
        self._pool_timeout = pool_timeout
        self._max_batch = max_batch
        self._pending: list[tuple[Row, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._flush_forever()) for _ in range(flushers)]

    async def store(self, row: Row) -> None:
        """Returns when `row` (storage.COLUMNS, in order) is committed; raises what the write raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))
        self._wake.set()
        await asyncio.shield(done)  # a client that goes away does not undo its row's batch

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _, done in self._pending:
            if not done.done():
                done.set_exception(ConnectionAbortedError("the collector is stopping"))
        self._pending.clear()

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            if not self._pending:
                self._wake.clear()
            if not batch:
                continue
            try:
                await self._write([row for row, _ in batch])
            except Exception as exc:
                if len(batch) > 1 and isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
                    # A row PostgreSQL refuses must not fail the others: write them one by one.
                    log.warning(
                        "a batch of %d rows was refused (%s); writing them one by one", len(batch), type(exc).__name__
                    )
                    await self._write_one_by_one(batch)
                else:
                    for _, done in batch:
                        _settle(done, exc)
            else:
                for _, done in batch:
                    _settle(done, None)

    async def _write_one_by_one(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        for row, done in batch:
            try:
                await self._write([row])
            except Exception as exc:
                _settle(done, exc)
            else:
                _settle(done, None)

    async def _write(self, rows: list[Row]) -> None:
        started = time.perf_counter()
        async with self._pool.connection(timeout=self._pool_timeout) as conn:
            await storage.copy_reports(conn, rows)
        if self._observe is not None:
            self._observe(len(rows), time.perf_counter() - started)


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if done.done():
        return
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)
