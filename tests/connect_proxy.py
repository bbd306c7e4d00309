"""A forwarding proxy on 127.0.0.1 for https endpoints: CONNECT, then bytes relayed both ways."""

from __future__ import annotations

import select
import socket
import threading

from tests.peers import RawPeer


class ConnectProxy:
    """Records each request line it gets (`CONNECT host:port`) and tunnels CONNECTs to their target."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.peer = RawPeer(self._tunnel)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.peer.port}"

    def close(self) -> None:
        self.peer.close()

    def _tunnel(self, conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        self.requests.append(f"{method} {target}")
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _relay(conn, upstream, stop)


def _relay(a: socket.socket, b: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        ready, _, _ = select.select([a, b], [], [], 0.2)
        for sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)
