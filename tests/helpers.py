"""Assertions shared by the tests."""

from __future__ import annotations

import socket
from typing import Any

PROBLEM = "application/problem+json"


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    """The response is problem+json with this status and the required members."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    for key in ("type", "title", "detail"):
        assert isinstance(body[key], str) and body[key]
    return body


def error_fields(r: Any, status: int = 422) -> list[str]:
    """The fields named by a validation problem."""
    return [e["field"] for e in assert_problem(r, status).get("errors") or []]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_scope(
    method: str, path: str, headers: dict[str, str], query: bytes = b""
) -> dict[str, Any]:
    """The ASGI scope uvicorn makes for an HTTP request from 127.0.0.1 to aff.test."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("aff.test", 80),
    }
