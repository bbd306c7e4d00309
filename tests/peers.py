"""Misbehaving HTTP peers on 127.0.0.1, for the job's fault tests (each stops itself)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable


class RawPeer:
    """A TCP server on 127.0.0.1 that handles each connection with `behave(conn)` in a thread."""

    def __init__(self, behave: Callable[[socket.socket, threading.Event], None]) -> None:
        self.behave = behave
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/report"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.behave(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def read_request(conn: socket.socket) -> None:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        body += conn.recv(65536)


def hang(conn: socket.socket, stop: threading.Event) -> None:
    """Accepts and never answers."""
    read_request(conn)
    stop.wait(60)


def slow_drip(conn: socket.socket, stop: threading.Event) -> None:
    """Answers 200 with a body of one byte every 200 ms."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        conn.sendall(b" ")
        stop.wait(0.2)


def huge_chunked(conn: socket.socket, stop: threading.Event) -> None:
    """Answers 200 with a 100 MB chunked body (no Content-Length)."""
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(100 * 16):
        if stop.is_set():
            return
        conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    conn.sendall(b"0\r\n\r\n")


def closed_port() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/report"
