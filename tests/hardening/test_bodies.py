"""Bodies are bounded before they are read; an unexpected error keeps the connection open."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import uvicorn
from fastapi import APIRouter, Request

from service.app import create_asgi
from service.kit.bodylimit import BodyLimit
from tests.conftest import settings_for_tests
from tests.helpers import assert_problem, free_port, http_scope

LIMIT = 1_048_576


async def _call(app: Any, method: str, path: str, headers: dict[str, str], chunks: list[bytes]):
    """One raw ASGI request; returns (status, body, chunks the app pulled)."""
    pulled = 0
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if not pending:
            raise AssertionError("the app read past the last chunk")
        pulled += 1
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope(method, path, headers)
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body), pulled


async def test_declared_length_over_the_limit_is_413_before_anything_is_read(served):
    status, headers, body, pulled = await _call(
        served.asgi,
        "POST",
        "/v1/conversions",
        {"content-length": str(200 * 1024 * 1024), "content-type": "application/json"},
        [],
    )
    assert (status, pulled) == (413, 0)  # not read, and no 401: auth never ran
    assert headers[b"content-type"] == b"application/problem+json"
    assert body["status"] == 413 and body["detail"]


async def test_chunked_body_is_cut_at_the_limit(served, admin):
    chunk = b"x" * 65536
    chunks = [b'{"name": "'] + [chunk] * 40  # 2.5 MiB offered, no Content-Length
    status, headers, body, pulled = await _call(
        served.asgi, "POST", "/v1/programs", {**admin, "content-type": "application/json"}, chunks
    )
    assert status == 413, body
    assert headers[b"content-type"] == b"application/problem+json"
    assert pulled <= LIMIT // len(chunk) + 2  # stopped where the limit was passed


async def test_body_under_the_limit_goes_through(served, admin):
    content = json.dumps({"name": "x" * 1000}).encode()
    status, _, body, _ = await _call(
        served.asgi,
        "POST",
        "/v1/programs",
        {**admin, "content-type": "application/json", "content-length": str(len(content))},
        [content],
    )
    assert status == 422 and "currency" in {e["field"] for e in body["errors"]}


async def test_limit_follows_the_setting(served, admin):
    small = BodyLimit(served.app, 2048)
    transport = httpx.ASGITransport(app=small)
    async with httpx.AsyncClient(transport=transport, base_url="http://aff.test") as c:
        r = await c.post("/v1/programs", content=b"{" + b" " * 4096 + b"}", headers=admin)
    assert_problem(r, 413)


async def test_content_length_that_is_not_a_number_is_400(served):
    status, _, body, pulled = await _call(
        served.asgi, "POST", "/v1/programs", {"content-length": "12abc"}, []
    )
    assert (status, pulled) == (400, 0)
    assert body["detail"]


async def test_unexpected_error_is_500_and_the_connection_stays_open(database_url):
    asgi = create_asgi(settings_for_tests(), database_url=database_url)
    boom = APIRouter()

    @boom.get("/test/boom")
    async def _boom() -> None:
        raise RuntimeError("boom")

    @boom.get("/test/peer")
    async def _peer(request: Request) -> dict[str, int]:
        return {"port": request.client.port if request.client else 0}

    asgi.fastapi.include_router(boom)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="critical", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as c:
            first = (await c.get("/test/peer")).json()["port"]
            r = await c.get("/test/boom")
            assert_problem(r, 500)
            assert r.headers.get("connection") != "close"
            after = await c.get("/test/peer")
            assert after.status_code == 200
            assert after.json()["port"] == first  # the same connection, still open
            assert_problem(await c.get("/test/boom"), 500)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
