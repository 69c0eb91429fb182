"""The service as a separate process on the machine's PostgreSQL, and a client to load it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.links.factories import click_token

ROOT = Path(__file__).resolve().parents[2]
UA = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/121.0"}


def need_machine_postgres() -> None:
    """Skip unless TEST_DATABASE_URL names a server that other processes can reach."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("needs TEST_DATABASE_URL: the server runs as its own process")


def plain(url: str) -> str:
    """The asyncpg (libpq-style) spelling of a database URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """`python -m service serve` on a free loopback port."""

    def __init__(self, database_url: str, log_path: Path, **settings: str) -> None:
        self.env = dict(os.environ)
        self.env.pop("AFFILIATE_MIGRATE", None)
        self.env.update(DATABASE_URL=database_url, **settings)
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        """Start it and wait until /readyz says 200."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready in {timeout} s: {self.log_path.read_text()[-3000:]}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no flush."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def keys(self, role: str, *extra: str) -> dict[str, str]:
        """Authorization headers for a new key made with the CLI."""
        out = subprocess.run(
            [sys.executable, "-m", "service", "keys", "create", "--role", role, *extra],
            cwd=ROOT,
            env={**self.env, "AFFILIATE_MIGRATE": "0"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return {"Authorization": f"Bearer {out.stdout.strip().splitlines()[-1]}"}


@dataclass
class Tally:
    """What a load client saw: statuses, 5xx without Retry-After, what was acknowledged."""

    statuses: dict[int, int] = field(default_factory=dict)
    no_retry_after: int = 0
    transport_errors: int = 0
    # click token -> client clock (monotonic) when its 302 arrived
    clicks: dict[str, float] = field(default_factory=dict)
    orders: list[str] = field(default_factory=list)

    def saw(self, r: httpx.Response) -> None:
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.status_code >= 500 and "retry-after" not in r.headers:
            self.no_retry_after += 1

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500 and status != 503)


async def click_load(
    client: httpx.AsyncClient, code: str, tally: Tally, stop: asyncio.Event, limit: int
) -> None:
    """Follow the link until told to stop (or `limit` answers), noting every 302."""
    for i in range(limit):
        if stop.is_set():
            return
        try:
            r = await client.get(f"/r/{code}?sub1=w{i}", headers=UA)
        except httpx.TransportError:
            tally.transport_errors += 1
            if stop.is_set():
                return
            await asyncio.sleep(0.01)
            continue
        tally.saw(r)
        if r.status_code == 302:
            tally.clicks[click_token(r.headers["location"])] = time.monotonic()


async def stored_tokens(database_url: str, tokens: list[str]) -> set[str]:
    """Which click tokens have a row in clicks."""
    conn = await asyncpg.connect(plain(database_url))
    try:
        rows = await conn.fetch(
            "SELECT click_token FROM clicks WHERE click_token = ANY($1::text[])", tokens
        )
    finally:
        await conn.close()
    return {row[0] for row in rows}


async def make_link(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, Any]:
    """A program, a partner and a link of theirs."""
    from tests.factories import create_partner, create_program
    from tests.links.factories import create_link

    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    return await create_link(client, admin, program, partner)
