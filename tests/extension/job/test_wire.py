"""What goes on the wire, and what is left when a send returns.

Retry-After followed up to the protocol's cap with no retry by the HTTP library;
only the documented environment shapes the request, no redirect adds credentials;
no thread, socket or process survives a send, even when DNS hangs; no unprivileged
role blocks or triggers one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

import telemetry_protocol as protocol
from tests import peers
from tests.cluster import Cluster
from tests.connect_proxy import ConnectProxy
from tests.extension.job.helpers import (
    DEADLINE,
    answer,
    attempts,
    configure,
    in_thread,
    peer_answers,
    seconds_until,
    telemetry_log_lines,
    tick,
)
from tests.helpers import scalar
from tests.pgtree import PgTree

HOUR = 3600.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("36000", 10 * HOUR),  # ten hours: past the six urllib3 would cut it to
        ("2592000", float(protocol.MAX_RETRY_AFTER_SECONDS)),  # 30 days: cut to the protocol's cap
        ("date+2d", 48 * HOUR),  # an HTTP-date two days ahead
        ("soon", HOUR),  # not a Retry-After: the back-off (retry_base) decides
    ],
)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_followed_up_to_the_cap_and_nothing_retries(
    db: psycopg.Connection[Any], httpserver: HTTPServer, header: str, expected: float, status: int
) -> None:
    value = formatdate(time.time() + 48 * HOUR, usegmt=True) if header == "date+2d" else header
    httpserver.expect_request("/v1/report").respond_with_data("later", status=status, headers={"Retry-After": value})
    configure(db, httpserver.url_for("/v1/report"))
    outcome = tick(db)
    assert outcome["outcome"] == "failed" and outcome["http_status"] == status
    assert abs(seconds_until(db) - expected) < 60
    time.sleep(1.5)  # a retry honouring a short header would have come by now
    assert len(httpserver.log) == 1  # one request: the HTTP library retries nothing


def test_no_retry_on_a_connection_dropped_mid_answer(db: psycopg.Connection[Any]) -> None:
    def drop(conn: socket.socket, stop: threading.Event) -> None:
        peers.read_request(conn)
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 100\r\n\r\nx")

    peer = peers.RawPeer(drop)
    try:
        configure(db, peer.url)
        assert tick(db)["outcome"] == "failed"
        time.sleep(1.5)
        assert peer.connections == 1
    finally:
        peer.close()


def test_only_the_documented_environment_shapes_the_request(pg_tree: PgTree, httpserver: HTTPServer) -> None:
    """Credentials in .netrc/$NETRC are ignored; proxy variables are not (see also the CA bundle test below)."""
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    home = pg_tree.tempdir("home-")
    netrc = Path(home) / ".netrc"
    netrc.write_text(
        "machine 127.0.0.1 login ambient password secret\nmachine localhost login ambient password secret\n"
        "default login ambient password secret\n"
    )
    os.chmod(netrc, 0o644)  # readable by the server's user, whoever owns it
    proxy = HTTPServer(host="127.0.0.1", port=0)  # a forwarding proxy stand-in: it answers itself
    proxy.start()
    proxy.expect_request("/v1/report", method="POST").respond_with_json(answer())
    environment = {
        "HOME": str(home),  # kept when the tests run as an ordinary user; runuser resets it for root
        "NETRC": str(netrc),
        "http_proxy": f"http://127.0.0.1:{proxy.port}",
        "no_proxy": "localhost",
    }
    c = Cluster(pg_tree, name="ambient", env=environment).start()
    try:
        with c.database("ambient") as conn:
            # 127.0.0.1 goes through http_proxy; localhost is in no_proxy and goes direct.
            configure(conn, f"http://127.0.0.1:{httpserver.port}/v1/report")
            assert tick(conn, "telemetry_send_report")["outcome"] == "sent"
            configure(conn, f"http://localhost:{httpserver.port}/v1/report")
            assert tick(conn, "telemetry_send_report")["outcome"] == "sent"
        [(through_proxy, _)] = proxy.log
        [(direct, _)] = httpserver.log
        assert through_proxy.headers["Host"] == f"127.0.0.1:{httpserver.port}"
        for request in (through_proxy, direct):
            assert "Authorization" not in request.headers
            assert sorted(request.headers.keys()) == sorted(
                ["Host", "User-Agent", "Accept-Encoding", "Accept", "Connection", "Content-Type", "Content-Length"]
            )
    finally:
        c.destroy()
        proxy.stop()


def _threads_and_sockets(pid: int) -> tuple[int, int]:
    threads = len(os.listdir(f"/proc/{pid}/task"))
    sockets = sum(
        1 for fd in os.listdir(f"/proc/{pid}/fd") if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    )
    return threads, sockets


def _settled(pid: int) -> tuple[int, int]:
    """The backend's threads and sockets, once a joined thread's last instructions ran.

    join() returns when the Python thread is done; the kernel lists it a moment
    longer.  A thread left behind would stay for the peer's 60 s.
    """
    for _ in range(20):
        found = _threads_and_sockets(pid)
        if found == (1, 1):
            break
        time.sleep(0.1)
    return found


def test_a_send_leaves_no_thread_and_no_socket_behind(db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    pid = scalar(db, "SELECT pg_backend_pid()")
    peer_answers(db, httpserver, answer(), deadline="1 s")
    assert tick(db, "telemetry_send_report")["outcome"] == "sent"  # loads requests; a clean exchange
    # One thread (PostgreSQL's backend is single-threaded), one socket (its client's).
    assert _settled(pid) == (1, 1)

    def half_close(conn: socket.socket, stop: threading.Event) -> None:
        peers.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{")
        conn.shutdown(socket.SHUT_WR)  # the peer says no more, and keeps the socket open
        stop.wait(60)

    for behave in (peers.slow_drip, peers.hang, half_close):
        peer = peers.RawPeer(behave)
        try:
            configure(db, peer.url, deadline="1 s")
            for _ in range(2):
                outcome = tick(db, "telemetry_send_report")
                assert outcome["outcome"] == "failed", outcome
                assert _settled(pid) == (1, 1), behave.__name__
        finally:
            peer.close()


def test_no_unprivileged_role_can_block_or_trigger_a_send(
    db: psycopg.Connection[Any], cluster: Cluster, httpserver: HTTPServer
) -> None:
    peer_answers(db, httpserver, answer())
    db.execute("CREATE ROLE lock_plain LOGIN")
    db.execute("CREATE ROLE lock_monitor LOGIN IN ROLE pg_monitor")
    holders: list[psycopg.Connection] = []
    try:
        for user in ("lock_plain", "lock_monitor"):
            conn = cluster.connect(db.info.dbname, user=user)
            conn.autocommit = False  # what it takes, it holds until the end
            holders.append(conn)
            # The advisory lock 0.1.0 used, taken (by the first) and held: it no longer matters.
            conn.execute("SELECT pg_try_advisory_lock(1952803941, 1), pg_try_advisory_xact_lock(1952803941, 1)")
            for sql in (
                "LOCK TABLE _telemetry.send_lock IN SHARE UPDATE EXCLUSIVE MODE NOWAIT",
                "LOCK TABLE _telemetry.send_lock IN ACCESS SHARE MODE",
                "SELECT * FROM _telemetry.schedule FOR UPDATE",
                "SELECT * FROM _telemetry.send_lock FOR SHARE",
                "SELECT telemetry_tick()",
                "SELECT _telemetry.tick()",
                "SELECT telemetry_send_report()",
            ):
                conn.execute("SAVEPOINT s")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql)
                conn.execute("ROLLBACK TO SAVEPOINT s")
            if user == "lock_monitor":  # may read the schedule: a share of it blocks nothing
                conn.execute("SELECT * FROM _telemetry.schedule")
        # Their transactions stay open, holding what they could take: the tick still sends.
        assert tick(db)["outcome"] == "sent"
        assert len(httpserver.log) == 1 and [a["trigger"] for a in attempts(db)] == ["job"]
    finally:
        for conn in holders:
            conn.close()
        db.execute("DROP ROLE lock_plain")
        db.execute("DROP ROLE lock_monitor")


def test_a_send_skipped_because_another_is_sending_is_logged(db: psycopg.Connection[Any], cluster: Cluster) -> None:
    peer = peers.RawPeer(peers.hang)
    try:
        configure(db, peer.url, deadline="5 s")
        thread, first = in_thread(cluster, db.info.dbname, "SELECT telemetry_send_report()")
        while peer.connections == 0:
            time.sleep(0.05)
        offset = cluster.log_offset()
        assert tick(db, "telemetry_send_report")["outcome"] == "busy"
        thread.join(30)
        assert first["value"]["outcome"] == "failed"
        lines = [line for line in telemetry_log_lines(cluster, offset) if "another session is sending" in line]
        assert len(lines) == 1 and " LOG: " in lines[0], lines
    finally:
        peer.close()


def test_a_redirect_carrying_credentials_is_not_followed(db: psycopg.Connection[Any], httpserver: HTTPServer) -> None:
    """requests would turn the Location's user:password into an Authorization header."""
    location = httpserver.url_for("/v1/elsewhere").replace("://", "://user:secret@", 1)
    httpserver.expect_request("/v1/report").respond_with_response(Response(status=307, headers={"Location": location}))
    httpserver.expect_request("/v1/elsewhere").respond_with_json(answer())
    configure(db, httpserver.url_for("/v1/report"))
    outcome = tick(db, "telemetry_send_report")
    assert [request.headers.get("Authorization") for request, _ in httpserver.log] == [None]
    assert (outcome["outcome"], outcome.get("error")) == ("failed", "redirect to another location not followed")


class HungDns:
    """A DNS server on 127.0.0.x:53 (UDP) that reads every query and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for last in range(53, 253):  # another test run may hold one: take the next
            try:
                self.sock.bind((f"127.0.53.{last}", 53))
                break
            except OSError:
                continue
        self.address = self.sock.getsockname()[0]
        self.sock.settimeout(0.2)
        self.queries = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stop.is_set():
            try:
                self.sock.recv(4096)
            except TimeoutError:
                continue
            self.queries += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def _private_mounts_possible() -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "--mount", "--", "true"], check=False, capture_output=True).returncode == 0


@dataclass(frozen=True)
class _TreeWithResolver(PgTree):
    """The test tree, its server started in a mount namespace of its own whose /etc/resolv.conf is `resolv_conf`."""

    resolv_conf: Path = Path("/nonexistent")

    @property
    def pg_ctl(self) -> Path:
        wrapper = self.resolv_conf.parent / "pg_ctl-with-test-resolver"
        if not wrapper.exists():
            inner = f'mount --bind "{self.resolv_conf}" /etc/resolv.conf && exec "{super().pg_ctl}" "$@"'
            wrapper.write_text(f"#!/bin/sh\nexec unshare --mount --propagation private -- sh -c '{inner}' sh \"$@\"\n")
            wrapper.chmod(0o755)
        return wrapper


def _children(pid: int) -> str:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().strip()


@pytest.mark.skipif(
    not _private_mounts_possible(), reason="needs root: a mount namespace for the server's own resolv.conf, port 53"
)
def test_a_name_lookup_that_hangs_ends_at_the_deadline_and_leaves_nothing_behind(pg_tree: PgTree) -> None:
    """The system's resolver, pointed (for this server only) at a DNS server that never answers."""
    dns = HungDns()
    resolv_conf = pg_tree.tempdir("resolver-") / "resolv.conf"
    resolv_conf.write_text(f"nameserver {dns.address}\noptions timeout:30 attempts:1\n")
    resolv_conf.chmod(0o644)
    tree = _TreeWithResolver(**vars(pg_tree), resolv_conf=resolv_conf)
    c = Cluster(tree, name="hung-dns").start()
    try:
        with c.database("hungdns") as conn:
            configure(conn, "http://telemetry-report.test/v1/report", deadline=f"{DEADLINE} s")
            pid = scalar(conn, "SELECT pg_backend_pid()")
            for _ in range(2):
                started = time.monotonic()
                outcome = tick(conn, "telemetry_send_report")
                elapsed = time.monotonic() - started
                assert outcome["outcome"] == "failed", outcome
                assert elapsed < DEADLINE + 15, f"the send took {elapsed:.1f} s"  # the resolver would wait 30 s
                assert _settled(pid) == (1, 1)  # no thread, no socket left
                assert _children(pid) == ""  # and no lookup still running
            assert dns.queries > 0  # the lookups did reach the DNS server that never answers
            # A cancel during the lookup ends it at once, and leaves nothing either.
            configure(conn, "http://telemetry-report.test/v1/report", deadline="30 s")
            with c.connect("hungdns") as sender:
                pid = sender.info.backend_pid
                failed: list[BaseException] = []
                queries = dns.queries

                def send() -> None:
                    try:
                        sender.execute("SELECT telemetry_send_report()")
                    except psycopg.Error as exc:
                        failed.append(exc)

                thread = threading.Thread(target=send)
                thread.start()
                waited = time.monotonic()
                while dns.queries == queries and time.monotonic() - waited < 20:
                    time.sleep(0.05)
                conn.execute("SELECT pg_cancel_backend(%s)", [pid])
                thread.join(30)
                assert [type(exc) for exc in failed] == [psycopg.errors.QueryCanceled]
                assert _settled(pid) == (1, 1)
                assert _children(pid) == ""
    finally:
        c.destroy()
        dns.close()


@pytest.mark.parametrize("status", [307, 308])
def test_a_same_origin_redirect_is_followed(db: psycopg.Connection[Any], httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/v1/report", method="POST").respond_with_response(
        Response(status=status, headers={"Location": "/v1/moved"})
    )
    httpserver.expect_request("/v1/moved", method="POST").respond_with_json(answer())
    configure(db, httpserver.url_for("/v1/report"))
    assert tick(db, "telemetry_send_report")["outcome"] == "sent"
    [(first, _), (second, _)] = httpserver.log
    assert (first.path, second.path) == ("/v1/report", "/v1/moved")
    assert second.method == "POST" and second.get_data() == first.get_data() != b""
    [audit] = attempts(db)
    assert audit["outcome"] == "sent" and audit["http_status"] == 200


def test_ca_bundle_variables_and_all_proxy_are_ignored_https_proxy_is_used_lowercase_first(
    pg_tree: PgTree, httpserver: HTTPServer, tls_peer: tuple[HTTPServer, str]
) -> None:
    """Each variable here changes what a requests.Session() trusting the environment does, and must not change ours.

    REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE name a CA that trusts the https peer: only the ca_file option may.
    ALL_PROXY, with no http_proxy set, would carry http requests.  https_proxy (lowercase) carries
    https requests, HTTPS_PROXY (where nothing listens) loses to it, and http_proxy plays no part.
    """
    tls_server, ca_file = tls_peer
    httpserver.expect_request("/v1/report", method="POST").respond_with_json(answer())
    all_proxy = HTTPServer(host="127.0.0.1", port=0)  # a forwarding proxy stand-in: it answers itself
    all_proxy.start()
    all_proxy.expect_request("/v1/report", method="POST").respond_with_json(answer())
    tunnel = ConnectProxy()
    environment = {
        "REQUESTS_CA_BUNDLE": ca_file,
        "CURL_CA_BUNDLE": ca_file,
        "ALL_PROXY": f"http://127.0.0.1:{all_proxy.port}",
        "https_proxy": tunnel.url,
        "HTTPS_PROXY": peers.closed_port().removesuffix("/v1/report"),
    }
    c = Cluster(pg_tree, name="ca-bundle", env=environment).start()
    try:
        with c.database("ca_bundle") as conn:
            configure(conn, f"http://127.0.0.1:{httpserver.port}/v1/report")
            assert tick(conn, "telemetry_send_report")["outcome"] == "sent"
            assert (len(httpserver.log), len(all_proxy.log)) == (1, 0)  # direct, not through ALL_PROXY

            https_url = f"https://127.0.0.1:{tls_server.port}/v1/report"
            configure(conn, https_url)
            refused = tick(conn, "telemetry_send_report")
            assert (refused["outcome"], refused.get("error")) == ("failed", "TLS verification failed"), refused
            assert len(tls_server.log) == 0

            conn.execute("SELECT telemetry_set_option('ca_file', %s)", [ca_file])
            assert tick(conn, "telemetry_send_report")["outcome"] == "sent"
            assert len(tls_server.log) == 1
        assert tunnel.requests == [f"CONNECT 127.0.0.1:{tls_server.port}"] * 2
    finally:
        c.destroy()
        tunnel.close()
        all_proxy.stop()
