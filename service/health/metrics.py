"""Prometheus request counts and latencies by route template, as plain ASGI."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("affiliate_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "affiliate_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class MetricsMiddleware:
    """Counts by route template, so that ids in paths do not explode the label set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Each label set's counter and histogram, looked up once: labels() takes a lock
        # and checks the values on every call. Bounded as the label sets are (templates).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            key = (method, template, status)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    REQUESTS.labels(method, template, str(status)),
                    LATENCY.labels(method, template),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - start)


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
