"""A throwaway PostgreSQL for tests: Debian's `postgresql` package (installed by `make`), a
temporary `initdb` cluster on a free 127.0.0.1 port, run as an unprivileged user.

    with PgServer.start() as pg:
        dsn = pg.create_database("t1")        # postgresql://engine@127.0.0.1:PORT/t1
        ... password: pg.password (the engine reads it from an environment variable)
        pg.restart_immediate()                # `pg_ctl restart -m immediate`: a crash of the server

PostgreSQL refuses to run as root, and CI runs as root: the cluster's folder is then given to
the `postgres` system user (the package creates it; else `nobody`) and every server command runs
through `runuser`. `fsync=off` keeps the tests fast: a crash of the server process (`-m
immediate`) still loses nothing committed (the WAL is in the operating system's cache); only a
power cut would, which no test makes. Password authentication (scram-sha-256) is on, so the
engine's way of passing the password is what the tests use.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

USER = "engine"
"""The database superuser the tests connect as."""


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's server programs (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    """The system user to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


class PgServer:
    """One running PostgreSQL cluster in a temporary folder (see the module docstring)."""

    def __init__(self, bin_dir: Path, root: Path, port: int, user: str | None, password: str) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.user = user
        self.password = password
        self.host = "127.0.0.1"
        self.options = ""

    @classmethod
    def start(cls, max_connections: int = 200) -> PgServer:
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed: run `make install` (as root) or apt-get install postgresql")
        user = _run_as()
        root = Path(tempfile.mkdtemp(prefix="rules-engine-pg-"))
        os.chmod(root, 0o700)
        password = secrets.token_hex(12)
        (root / "pwfile").write_text(password + "\n")
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (root, root / "pwfile"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir, root, free_port(), user, password)
        try:
            server._command("initdb", "-D", str(server.data), "-U", USER, "--pwfile", str(root / "pwfile"),
                            "-A", "scram-sha-256", "--no-sync", "-E", "UTF8", "--locale", "C")
            server.options = options = (f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       f"-c full_page_writes=off -c max_connections={max_connections}")
            server._command("pg_ctl", "-D", str(server.data), "-l", str(root / "server.log"), "-o", options,
                            "-w", "-t", "60", "start")
        except BaseException:
            server.stop()
            raise
        return server

    def _command(self, program: str, *args: str) -> str:
        argv = [str(self.bin_dir / program), *args]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.root, timeout=120)
        if done.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{log[-2000:]}")
        return done.stdout

    def dsn(self, database: str = "postgres") -> str:
        """The database's address as the engine config names it (no password)."""
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres"):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(self.dsn(database), password=self.password, autocommit=True, connect_timeout=5)

    def create_database(self, name: str) -> str:
        """A new empty database; its DSN."""
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def restart_immediate(self) -> None:
        """`pg_ctl restart -m immediate`: every backend is killed without a checkpoint (a
        crash), then the server starts again and recovers from its WAL."""
        self._command("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", self.options,
                      "-m", "immediate", "-w", "-t", "60", "restart")

    def stop_immediate(self) -> None:
        self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def start_again(self) -> None:
        self._command("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", self.options,
                      "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server (if it runs) and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._command("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running() -> Iterator[PgServer]:
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()


def wait_until_up(server: PgServer, timeout: float = 30.0) -> None:
    """Wait until the server takes connections again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.connect().close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
