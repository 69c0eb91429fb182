"""Shared bench plumbing: a real server in a subprocess, on a throwaway embedded PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
