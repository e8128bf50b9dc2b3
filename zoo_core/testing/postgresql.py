"""A throw-away PostgreSQL server for the tests and the benchmarks (no pytest needed).

    with throwaway_postgresql() as server:     # postgresql://zoo@127.0.0.1:PORT
        url = new_database(server, "runs")      # postgresql://zoo@127.0.0.1:PORT/runs

The server is started from Debian's binaries (:func:`pg_bindir`, ``apt-get install
postgresql``) in a temporary folder, listens on 127.0.0.1 only, runs as an unprivileged
user when we are root (PostgreSQL refuses to run as root), and is stopped and removed when
the block ends. tests/conftest.py's ``postgresql_server`` fixture and
benchmarks/sweep.py both use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

PG_USER = "zoo-pg"  # the unprivileged user the server runs as when we are root


def pg_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin holding pg_ctl, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_server_user(command: list[str]) -> list[str]:
    """``command`` run as PG_USER when we are root (made a system user if needed)."""
    import pwd

    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        PG_USER], check=True, capture_output=True)
    return ["runuser", "-u", PG_USER, "--", *command]


@contextlib.contextmanager
def throwaway_postgresql() -> Iterator[str]:
    """A PostgreSQL server in a temporary folder: its base URL while the block runs.

    Raises:
        FileNotFoundError: PostgreSQL's server binaries are not installed.
    """
    bindir = pg_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are "
                                "absent: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="zoo-pg-"))
    data, port = folder / "data", free_port()
    if os.geteuid() == 0:
        as_server_user(["true"])  # creates the user if needed
        shutil.chown(folder, PG_USER)
    run = dict(check=True, capture_output=True, text=True)
    subprocess.run(as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", "zoo",
                                   "--auth=trust", "-E", "UTF8", "--no-sync"]), **run)
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    subprocess.run(as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
                                   "-l", str(folder / "server.log"), "-o", options, "start"]),
                   **run)
    try:
        yield f"postgresql://zoo@127.0.0.1:{port}"
    finally:
        subprocess.run(as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m",
                                       "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def new_database(server: str, name: str) -> str:
    """The URL of a new, empty database ``name`` on ``server`` (needs psycopg)."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
