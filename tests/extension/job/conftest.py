"""Fixtures the job's tests share."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme
from pytest_httpserver import HTTPServer

from tests.extension.job.helpers import answer
from tests.pgtree import PgTree


@pytest.fixture
def tls_peer(pg_tree: PgTree) -> Iterator[tuple[HTTPServer, str]]:
    """An https peer whose certificate no system CA signed, and a CA file (readable by the server) that trusts it."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    server.expect_request("/v1/report", method="POST").respond_with_json(answer())
    ca_file = pg_tree.tempdir("ca-") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca_file.chmod(0o644)
    try:
        yield server, str(ca_file)
    finally:
        server.stop()
