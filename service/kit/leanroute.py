"""The hottest JSON writes (sales, refunds) served without FastAPI's per-request work; anything
out of the ordinary handed to FastAPI's own route for it.

FastAPI's handling of one request (finding the route among the included routers, reading
the content type, solving the dependencies, validating the body, validating and dumping
the answer) cost about a millisecond of CPU per sale, a sixth of the whole, against the
same work done by the endpoint's own functions. A `LeanJsonRoute` goes in front of the
app's routes, inside every middleware and exception handler, and serves the common case
itself: a body of `application/json` that parses and validates as the model. It runs the
app's request checks, then its handler, which calls the same functions FastAPI's endpoint
does. Any other request (another content type, a body that does not parse or validate,
another method) goes on to FastAPI's route with its body replayed, so every refusal is the
one FastAPI gives, and the route's OpenAPI description stays FastAPI's.

The lean routes of an app share an `Admission`: at most so many of their requests are
handled at once in the process, the others wait their turn in order of arrival.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set in the scope of a request handed on: the lean route then matches it no more.
HANDED_ON = "lean_route.handed_on"

RequestCheck = Callable[[Request], Awaitable[None]]
Handler = Callable[[Request, Any], Awaitable[Response]]


class LeanRoute(NamedTuple):
    """What a LeanJsonRoute serves: `method path` with a JSON body of `model`."""

    path: str
    method: str
    model: type[BaseModel]
    handler: Handler


class Admission:
    """At most `limit` requests at once in this process (its event loop), the others waiting
    their turn in order of arrival, before any of their work: their body's parsing too.

    Sized to the database pool (its connections, and one more), it changes no request's
    work, only when it runs. Without it, every request a worker has taken in runs at once,
    interleaved: each waits, between its statements, behind the parsing and answering of
    all the others, and a few wait far longer than the rest (bench/conversions.py, 2
    workers at concurrency 32: p99 160-240 ms against a p50 of about 40 ms; with it,
    85-110 ms, at the same rate).
    """

    __slots__ = ("_loop", "_slots", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an admission needs a limit of at least 1")
        self.limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    def slots(self) -> asyncio.Semaphore:
        """The running event loop's semaphore (a semaphore waits in one loop only)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._slots is None:
            self._loop, self._slots = loop, asyncio.Semaphore(self.limit)
        return self._slots


class LeanJsonRoute(Route):
    """`method path` with a JSON body of `model`, answered by `handler(request, body)`.

    `checks` are the app's own dependencies on the request (FastAPI runs them before any
    route's), run here in the same order; `fallback` is the router to hand the other
    requests to, FastAPI's; `admission`, when given, the turn every request waits for.
    """

    def __init__(
        self,
        path: str,
        method: str,
        model: type[BaseModel],
        handler: Handler,
        *,
        checks: Sequence[RequestCheck],
        fallback: ASGIApp,
        admission: Admission | None = None,
    ) -> None:
        super().__init__(path, self._unused, methods=[method], include_in_schema=False)
        self._model = model
        self._handler = handler
        self._checks = tuple(checks)
        self._fallback = fallback
        self.admission = admission

    @staticmethod
    async def _unused(request: Request) -> Response:  # pragma: no cover - handle() serves
        raise AssertionError("LeanJsonRoute.handle serves its requests")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(HANDED_ON):
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is not Match.FULL:
            # Another method on the path: FastAPI's routes answer it (or give the 405).
            return Match.NONE, {}
        # What the request metrics label it by: the route template, as for FastAPI's.
        child["route"] = self
        return match, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.admission is None:
            await self._handle(scope, receive, send)
            return
        async with self.admission.slots():
            await self._handle(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        body = self._parse(request, raw)
        if body is None:
            await self._hand_on(scope, receive, send, raw)
            return
        for check in self._checks:
            await check(request)
        response = await self._handler(request, body)
        await response(scope, receive, send)

    def _parse(self, request: Request, raw: bytes) -> BaseModel | None:
        # The body as FastAPI would validate it (json.loads, then the model in Python
        # mode), or None for anything FastAPI should answer itself.
        content_type = request.headers.get("content-type")
        if not raw or content_type is None:
            return None
        if content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        try:
            return self._model.model_validate(data)
        except ValidationError:
            return None

    async def _hand_on(self, scope: Scope, receive: Receive, send: Send, raw: bytes) -> None:
        replayed = False

        async def replay() -> Message:
            # The body once, as it came; then the client's own messages (a disconnect).
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        scope[HANDED_ON] = True
        await self._fallback(scope, replay, send)
