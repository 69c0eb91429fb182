"""Shared bench plumbing: a real server in a subprocess, on a throwaway embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return sorted_values[index]


class Server:
    """`python -m service serve` on 127.0.0.1 with its own data directory."""

    def __init__(
        self,
        extra_env: dict[str, str] | None = None,
        database_url: str | None = None,
        workers: int = 1,
    ):
        self.tmp = tempfile.mkdtemp(prefix="affiliate-bench-")
        self.env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
        self.env.pop("DATABASE_URL", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.env["AFFILIATE_DATA_DIR"] = str(Path(self.tmp) / "data")
        self.env["AFFILIATE_LOG_LEVEL"] = "warning"
        self.env.update(extra_env or {})
        self.port = free_port()
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "service", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return out.stdout

    def admin_key(self) -> str:
        return self.cli("keys", "create", "--role", "admin").strip().splitlines()[-1]

    def start(self) -> str:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    return base
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not become ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None once it has exited."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its last ")".
    return raw[raw.rindex(")") + 2 :].split()


def _cpu_ticks(fields: list[str], *, children: bool = False) -> int:
    # utime, stime, cutime, cstime are fields 14-17 of stat(5); here 11-14 (from "state").
    used = int(fields[11]) + int(fields[12])
    return used + int(fields[13]) + int(fields[14]) if children else used


def _children(ppid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and int(fields[1]) == ppid:
                out.append(int(entry.name))
    return out


async def _backends(url: str) -> tuple[int | None, list[int]]:
    """The postmaster's pid (None when the server is not on this machine) and the pids of
    the other backends connected to this database."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        # Read while this connection's backend is alive: its parent is the postmaster.
        fields = _proc_stat(int(await conn.fetchval("SELECT pg_backend_pid()")))
    finally:
        await conn.close()
    postmaster = int(fields[1]) if fields is not None else None
    return postmaster, [int(r["pid"]) for r in rows]


class DatabaseCpu:
    """CPU time (user + system, from /proc/<pid>/stat) used by the database between `start`
    and `stop`: the backends connected to the bench database, and the whole server's process
    tree (postmaster, its live children, and the children that exited meanwhile, which also
    holds the WAL writer, checkpointer and autovacuum). Only measured when the server runs
    on this machine."""

    def __init__(self, url: str) -> None:
        self._url = url

    def _server_ticks(self) -> int:
        assert self._postmaster is not None
        fields = _proc_stat(self._postmaster)
        assert fields is not None, "the postmaster exited during the measurement"
        # Children that exited (and were waited for) are in the postmaster's cutime/cstime.
        total = _cpu_ticks(fields, children=True)
        for pid in _children(self._postmaster):
            child = _proc_stat(pid)
            if child is not None:
                total += _cpu_ticks(child, children=True)
        return total

    async def start(self) -> None:
        self._postmaster, pids = await _backends(self._url)
        if self._postmaster is None:
            return
        self._backends = {pid: _cpu_ticks(f) for pid in pids if (f := _proc_stat(pid))}
        self._server = self._server_ticks()

    async def stop(self) -> tuple[float, float] | None:
        """Seconds of CPU: (backends of the bench database, whole server); None when the
        server's processes are not visible from here."""
        if self._postmaster is None:
            return None
        server = self._server_ticks() - self._server
        backends = 0
        for pid, before in self._backends.items():
            fields = _proc_stat(pid)
            # A backend gone meanwhile (its connection closed) is counted up to the start only.
            if fields is not None:
                backends += _cpu_ticks(fields) - before
        _, pids = await _backends(self._url)
        for pid in set(pids) - set(self._backends):
            # Connected during the measurement: all its CPU is the measured work's.
            if fields := _proc_stat(pid):
                backends += _cpu_ticks(fields)
        return backends / _TICK, server / _TICK


def process_seconds(pid: int, *, tree: bool = False) -> float:
    """User + system CPU seconds of one process (its threads included) so far; with `tree`,
    of its live children too (uvicorn's workers)."""
    fields = _proc_stat(pid)
    assert fields is not None, f"process {pid} exited during the measurement"
    total = _cpu_ticks(fields, children=tree)
    if tree:
        for child in _children(pid):
            if (child_fields := _proc_stat(child)) is not None:
                total += _cpu_ticks(child_fields, children=True)
    return total / _TICK


def seconds_if_running(pid: int) -> float | None:
    """User + system CPU seconds of a process on this machine, None when there is none."""
    fields = _proc_stat(pid)
    return None if fields is None else _cpu_ticks(fields) / _TICK


async def on_server(server_url: str, sql: str) -> None:
    """One statement on the server's maintenance database (CREATE/DROP DATABASE)."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def bench_database(prefix: str) -> Iterator[str]:
    """A fresh database's URL (postgresql://): on the server DATABASE_URL names, or on an
    embedded PostgreSQL in a temporary directory; dropped afterwards, the embedded server
    stopped."""
    from service.db import EmbeddedPostgres

    tmp = embedded = None
    given = os.environ.get("DATABASE_URL")
    if given:
        server_url = given
    else:
        tmp = tempfile.mkdtemp(prefix=f"bench-{prefix}-")
        embedded = EmbeddedPostgres(Path(tmp))
        server_url = embedded.start()
    server_url = server_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"affiliate_bench_{secrets.token_hex(4)}"
    asyncio.run(on_server(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(on_server(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if embedded is not None:
            embedded.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.asynccontextmanager
async def app_in_process(settings: Any, url: str) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """The service's ASGI app on `url` (asyncpg's URL), started in this process (its
    lifespan run), and the headers of an admin key made for it."""
    from asgi_lifespan import LifespanManager

    from service.app import create_asgi
    from service.auth.keys import create_key
    from service.models import Role

    asgi = create_asgi(settings, database_url=url)
    async with LifespanManager(asgi, startup_timeout=600, shutdown_timeout=600):
        async with asgi.fastapi.state.sessionmaker() as session:
            _, key = await create_key(session, Role.admin)
            await session.commit()
        yield asgi, {"Authorization": f"Bearer {key}"}
