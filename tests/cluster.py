"""A throwaway PostgreSQL cluster from a PgTree, started through pytest-postgresql's executor."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from port_for import get_port
from pytest_postgresql.executors.proc import PostgreSQLExecutor

from tests.helpers import scalar
from tests.pgtree import PgTree, as_server_user, server_os_user

DEFAULT_CONF = {
    "shared_preload_libraries": "'telemetry,pg_cron'",
    # The background worker runs, but its rounds (one at the start, when no database
    # has the extension yet) never tick in the middle of a test that is not about it;
    # tests/extension/worker/ sets a short interval.
    "telemetry.tick_interval": "'2000000s'",
    "cron.database_name": "'postgres'",
    "log_line_prefix": "'%m [%p] %d '",
}


class Cluster:
    def __init__(
        self,
        tree: PgTree,
        name: str = "main",
        conf: Mapping[str, str | None] | None = None,
        env: dict[str, str] | None = None,
        dir_name: str | None = None,
        data_checksums: bool = False,
    ) -> None:
        self.tree = tree
        self.data_checksums = data_checksums
        self.base = tree.tempdir(f"{name}-") if dir_name is None else self._named_dir(dir_name)
        self.datadir = self.base / "data"
        self.socketdir = self.base
        self.logfile = self.base / "server.log"
        port = get_port(None)
        assert port is not None
        self.port = port
        self.user = server_os_user()
        self.env = env or {}
        settings = {**DEFAULT_CONF, **(conf or {})}
        # None leaves a default setting out (to be set with ALTER SYSTEM, which -c would override).
        options = " ".join(f"-c {key}={value}" for key, value in settings.items() if value is not None)
        self.executor = PostgreSQLExecutor(
            executable=str(tree.pg_ctl),
            host="127.0.0.1",
            port=self.port,
            datadir=str(self.datadir),
            unixsocketdir=str(self.socketdir),
            logfile=str(self.logfile),
            startparams="-w",
            dbname="postgres",
            user=self.user,
            postgres_options=options,
        )

    def _named_dir(self, dir_name: str) -> Path:
        from tests.pgtree import give_to_server_user

        path = self.tree.root / dir_name
        path.mkdir(mode=0o755)
        give_to_server_user(path)
        return path

    def __enter__(self) -> Cluster:
        """`with Cluster(...) as c:` starts it, and destroys it (data directory and all) at the end."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def start(self) -> Cluster:
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            self.executor.init_directory()  # once: a restart keeps the directory
            self._set_data_checksums()
            self.executor.start()
            self.executor.wait_for_postgres()
            self._wait_until_accepting()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return self

    def _wait_until_accepting(self, seconds: float = 60.0) -> None:
        """Until a connection succeeds: the executor only waits for the postmaster to run.

        Between that and the end of recovery, connections fail with "the database
        system is starting up", which a busy machine makes long enough to hit.
        """
        deadline = time.monotonic() + seconds
        while True:
            try:
                with self.connect():
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _set_data_checksums(self) -> None:
        """initdb turns data checksums on by default from PostgreSQL 18: clusters are alike on every major."""
        control = subprocess.run(
            as_server_user([str(self.tree.bindir / "pg_controldata"), "-D", str(self.datadir)]),
            check=True,
            capture_output=True,
            text=True,
            cwd="/",
            env={**os.environ, "LC_ALL": "C"},
        ).stdout
        match = re.search(r"^Data page checksum version:\s*(\d+)", control, re.MULTILINE)
        assert match, control
        if (match.group(1) != "0") != self.data_checksums:
            switch = "--enable" if self.data_checksums else "--disable"
            subprocess.run(
                as_server_user([str(self.tree.bindir / "pg_checksums"), switch, "-D", str(self.datadir)]),
                check=True,
                capture_output=True,
                cwd="/",
            )

    def stop(self) -> None:
        if self.executor.running():
            self.executor.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def connect(self, dbname: str = "postgres", user: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=str(self.socketdir),
            port=self.port,
            dbname=dbname,
            user=user or self.user,
            autocommit=True,
            **kwargs,
        )

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def log_since(self, offset: int) -> str:
        return self.log()[offset:]

    def log_offset(self) -> int:
        return len(self.log())

    def reload(self, seconds: float = 60.0) -> None:
        """pg_reload_conf(), then until a new session has the reloaded settings.

        The reload is asynchronous: the postmaster re-reads the files when it gets the
        signal, and sessions started after that inherit its new pg_conf_load_time().
        """
        with self.connect() as conn:
            before = scalar(conn, "SELECT pg_conf_load_time()")
            conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + seconds
        while True:
            with self.connect() as conn:
                if scalar(conn, "SELECT pg_conf_load_time() > %s", [before]):
                    return
            assert time.monotonic() < deadline, "the configuration was not reloaded"
            time.sleep(0.05)

    def create_database(self, name: str, *, template: str | None = None, extension: bool = False) -> None:
        """CREATE DATABASE `name` (a copy of `template`, if given), and the extension in it if asked."""
        statement = "CREATE DATABASE {}" if template is None else "CREATE DATABASE {} TEMPLATE {}"
        names = (name,) if template is None else (name, template)
        with self.connect() as admin:
            admin.execute(psycopg.sql.SQL(statement).format(*map(psycopg.sql.Identifier, names)))
        if extension:
            with self.connect(name) as conn:
                conn.execute("CREATE EXTENSION telemetry CASCADE")

    def drop_databases(self, *names: str) -> None:
        with self.connect() as admin:
            for name in names:
                admin.execute(
                    psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
                )

    @contextmanager
    def database(self, name: str, extension: bool = True) -> Iterator[psycopg.Connection[Any]]:
        self.create_database(name)
        try:
            with self.connect(name) as conn:
                if extension:
                    conn.execute("CREATE EXTENSION telemetry CASCADE")
                yield conn
        finally:
            self.drop_databases(name)

    def standby(self, name: str = "standby", conf: Mapping[str, str | None] | None = None) -> Cluster:
        """A streaming standby of this cluster made by pg_basebackup; not started."""
        standby = Cluster(self.tree, name=name, conf=conf)
        command = [
            str(self.tree.bindir / "pg_basebackup"),
            "-h", str(self.socketdir), "-p", str(self.port), "-U", self.user,
            "-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast",
        ]  # fmt: skip
        subprocess.run(as_server_user(command), check=True, cwd="/", capture_output=True)
        standby.executor._directory_initialised = True  # the base backup is the data directory: no initdb
        return standby
