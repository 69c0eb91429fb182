"""The lean routes' admission (service.kit.leanroute.Admission): at most so many requests
handled at once, the others in order of arrival, whatever event loop runs them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.app import create_app
from service.config import Settings
from service.kit.leanroute import Admission, LeanJsonRoute


class Body(BaseModel):
    n: int


class Recorder:
    """A handler that holds each request until released, noting how many run at once and
    in which order they started."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.started: list[int] = []
        self.release = asyncio.Event()

    async def __call__(self, request: Request, body: Any) -> Response:
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.append(body.n)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return JSONResponse({"n": body.n})


async def _unreachable(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("every request here is the lean route's")


def _app(handler: Recorder, admission: Admission | None) -> Starlette:
    route = LeanJsonRoute(
        "/x", "POST", Body, handler, checks=(), fallback=_unreachable, admission=admission
    )
    return Starlette(routes=[route])


async def _burst(app: Starlette, handler: Recorder, count: int) -> list[int]:
    """`count` requests at once, sent in order; released once the first ones run."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        tasks = []
        for n in range(count):
            tasks.append(asyncio.create_task(client.post("/x", json={"n": n})))
            await asyncio.sleep(0)  # each request reaches the route before the next is sent
        for _ in range(50):
            await asyncio.sleep(0)
        handler.release.set()
        answers = await asyncio.gather(*tasks)
    assert [a.status_code for a in answers] == [200] * count
    return [a.json()["n"] for a in answers]


async def test_at_most_the_limit_run_at_once_the_others_in_order_of_arrival() -> None:
    handler = Recorder()
    answered = await _burst(_app(handler, Admission(2)), handler, 8)
    assert answered == list(range(8))
    assert handler.most == 2
    assert handler.started == list(range(8))


async def test_without_an_admission_every_request_runs_at_once() -> None:
    # What the admission changes: the same burst, nobody waiting for a turn.
    handler = Recorder()
    await _burst(_app(handler, None), handler, 8)
    assert handler.most == 8


def test_one_admission_serves_one_event_loop_after_another() -> None:
    # An app outlives an event loop in tests and in a restarted server: a semaphore that
    # made a request wait in one loop cannot in the next.
    admission = Admission(1)
    for _ in range(2):
        handler = Recorder()
        asyncio.run(_burst(_app(handler, admission), handler, 3))
        assert handler.most == 1


async def test_a_request_that_fails_gives_its_turn_back() -> None:
    # Otherwise every failure would take a turn for good, and after `limit` of them the
    # routes would answer nothing more.
    async def failing(request: Request, body: Any) -> Response:
        if body.n % 2:
            raise RuntimeError("the handler failed")
        return JSONResponse({"n": body.n})

    route = LeanJsonRoute(
        "/x", "POST", Body, failing, checks=(), fallback=_unreachable, admission=Admission(1)
    )
    transport = httpx.ASGITransport(app=Starlette(routes=[route]), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answers = []
        for n in range(6):
            # Bounded: a turn never given back would leave the next request waiting forever.
            answer = await asyncio.wait_for(client.post("/x", json={"n": n}), timeout=5)
            answers.append(answer.status_code)
    assert answers == [200, 500] * 3


def test_a_limit_under_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Admission(0)


def test_the_apps_lean_routes_share_one_admission_sized_to_the_pool() -> None:
    app = create_app(Settings(db_pool_size=7, db_max_overflow=2, worker=False))
    lean = [r for r in app.router.routes if isinstance(r, LeanJsonRoute)]
    assert len(lean) == 2
    admissions = {id(r.admission) for r in lean}
    assert len(admissions) == 1
    assert lean[0].admission is not None and lean[0].admission.limit == 10
