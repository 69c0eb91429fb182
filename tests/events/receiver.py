"""A real HTTP receiver on 127.0.0.1, in a thread: it records what it gets and answers as told."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    received: list[Received] = field(default_factory=list)
    # Status codes to answer with, in turn; the last one repeats. 200 when empty.
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def next_status(self) -> int:
        with self.lock:
            if not self.statuses:
                return 200
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def of_type(self, type_: str) -> list[Received]:
        import json

        with self.lock:
            got = list(self.received)
        return [r for r in got if r.body and json.loads(r.body)["type"] == type_]

    async def wait_for(
        self, count: int, within: float = 20.0, type_: str | None = None
    ) -> list[Received]:
        """At least `count` requests (of the event type, when given), waiting without blocking the loop."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            got = self.of_type(type_) if type_ else self.all()
            if len(got) >= count:
                return got
            await asyncio.sleep(0.05)
        raise AssertionError(f"received {len(self.all())} requests, wanted {count} {type_ or ''}")

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)


@contextmanager
def receiving(**options: Any) -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 until the block ends."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            receiver = state["r"]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            with receiver.lock:
                receiver.received.append(
                    Received(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver.next_status()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("location", "http://127.0.0.1:9/elsewhere")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_POST = _handle
        do_GET = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["r"] = Receiver(port=server.server_address[1], **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["r"]
    finally:
        server.shutdown()
        server.server_close()
