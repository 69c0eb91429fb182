"""NATS for the click stream tests: the machine's server, or one of our own on a free port
(for the tests that stop it), and the skips when neither can be had."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import nats
import pytest

MACHINE_NATS = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            return s.recv(4).startswith(b"INFO")
    except OSError:
        return False


def need_machine_nats() -> str:
    """The machine's NATS URL; skip when nothing answers there."""
    host, _, port = MACHINE_NATS.removeprefix("nats://").partition(":")
    if not _answers(host, int(port or 4222)):
        pytest.skip(f"needs a NATS server with JetStream at {MACHINE_NATS}")
    return MACHINE_NATS


def stream_name() -> str:
    """A stream of its own for each test (its subjects follow from the name)."""
    return f"TCLICKS{secrets.token_hex(4).upper()}"


async def delete_stream(url: str, name: str) -> None:
    """Remove a test's stream from a shared server."""
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        await nc.jetstream().delete_stream(name)
    except Exception:
        pass
    finally:
        await nc.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OwnNats:
    """A nats-server with JetStream on a free loopback port, its store in a directory that
    outlives restarts (a stopped server comes back with its streams and consumers)."""

    def __init__(self, store: Path) -> None:
        if not Path(NATS_SERVER).exists():
            pytest.skip("needs the nats-server binary to start a NATS of the test's own")
        self.store = store
        self.port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        log = (self.store.parent / f"nats-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "nats-server exited"
            if _answers("127.0.0.1", self.port):
                return
            time.sleep(0.05)
        raise AssertionError(f"nats-server not answering in {timeout} s")

    def kill9(self) -> None:
        """SIGKILL: what JetStream had synced to its store is what it has."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def wait_for(predicate, *, seconds: float, delay: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    """Poll an async predicate until it holds, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(delay)
    return bool(await predicate())
