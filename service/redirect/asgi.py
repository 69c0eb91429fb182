"""GET /r/{code} as plain ASGI in front of FastAPI: FastAPI's routing costs several times
a bare app here, so nothing of it (nor pydantic, nor the ORM) is on this path."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import PROBLEM_JSON, problem_body
from service.fraud.markers import markers_in
from service.redirect.bots import is_bot
from service.redirect.location import build_location, deep_link_target, passthrough_params
from service.redirect.runtime import RedirectRuntime
from service.redirect.writer import WriterClosed
from service.tracking.urls import PATH_SAFE, DeepLinkRefused, validate_deep_link

log = logging.getLogger(__name__)

PREFIX = "/r/"
_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch
_COUNTRY = re.compile(rb"[A-Za-z]{2}").fullmatch
_SUB_KEYS = ("sub1", "sub2", "sub3", "sub4", "sub5")
MAX_USER_AGENT = 1024
MAX_REFERER = 2048

_REDIRECTS = Counter("affiliate_redirects_total", "Answers of GET /r/{code}", ["outcome"])
_CLICKED = _REDIRECTS.labels("click")
_FALLBACK = _REDIRECTS.labels("fallback")
_NOT_FOUND = _REDIRECTS.labels("not_found")
_REFUSED = _REDIRECTS.labels("bad_request")
_UNAVAILABLE = _REDIRECTS.labels("unavailable")

_NO_STORE = (b"cache-control", b"no-store")
_EMPTY = (b"content-length", b"0")
_EMPTY_BODY = {"type": "http.response.body", "body": b""}


class RedirectApp:
    """ASGI middleware: /r/ answered here, everything else (lifespan included) to `inner`,
    the stack in front of FastAPI; `fastapi` holds the runtime in its state."""

    def __init__(self, fastapi: FastAPI, inner: ASGIApp | None = None) -> None:
        self.fastapi = fastapi
        self.inner: ASGIApp = inner if inner is not None else fastapi
        # The dict Starlette's State keeps app.state's values in, read directly: reading
        # `state.redirect` fails the attribute lookup first (an AttributeError made and
        # cleared, 2% of a click's instructions) before State.__getattr__ finds it there.
        self._state: dict[str, Any] = fastapi.state._state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            runtime: RedirectRuntime | None = self._state.get("redirect")
            if runtime is None:
                await _problem(send, 503, "the redirect is not running", retry=True)
                return
            # The redirect never reads a request body, so none is ever taken in here.
            await redirect(runtime, scope, send)
            return
        await self.inner(scope, receive, send)


async def redirect(rt: RedirectRuntime, scope: Scope, send: Send) -> None:
    """Answer one /r/{code} request."""
    method = scope["method"]
    if method != "GET" and method != "HEAD":
        await _problem(
            send, 405, "the redirect answers GET and HEAD only", headers=[(b"allow", b"GET, HEAD")]
        )
        return
    code = scope["path"][len(PREFIX) :]
    if not _CODE(code):
        _NOT_FOUND.inc()
        await _problem(send, 404, "no link has this code")
        return
    try:
        entry = await rt.cache.get(code)
    except Exception:
        log.exception("link lookup failed")
        _UNAVAILABLE.inc()
        await _problem(send, 503, "the link could not be looked up; try again", retry=True)
        return
    if entry is None:
        _NOT_FOUND.inc()
        await _problem(send, 404, "no link has this code")
        return

    now = time.time()
    if not entry.active or (entry.expires_at is not None and entry.expires_at <= now):
        if entry.fallback_url:
            _FALLBACK.inc()
            location = entry.fallback_url
            if not location.isascii():
                location = quote(location, safe=PATH_SAFE)
            await _redirect(send, location.encode("ascii"))
        else:
            _NOT_FOUND.inc()
            state = "paused" if not entry.active else "expired"
            await _problem(send, 404, f"this link is {state}")
        return

    destination = entry.destination_url
    query = scope["query_string"]
    passthrough: list[tuple[str, str]] = []
    markers = None
    if query:
        target = deep_link_target(query)
        if target is not None:
            try:
                destination = validate_deep_link(target, entry.allowed_domains)
            except DeepLinkRefused as exc:
                _REFUSED.inc()
                await _problem(
                    send,
                    400,
                    f"deep link refused: {exc.reason}",
                    errors=[{"field": "url", "message": exc.reason}],
                )
                return
        passthrough = passthrough_params(query)
        markers = markers_in(query)

    user_agent = referer = country = None
    forwarded: list[str] = []
    ip_header, country_header = rt.ip_header, rt.country_header
    for name, value in scope["headers"]:
        if name == b"user-agent":
            user_agent = value
        elif name == b"referer":
            referer = value
        elif name == ip_header:
            forwarded.append(value.decode("latin-1"))
        elif name == country_header:
            country = value.strip()
    client = scope.get("client")
    peer = client[0] if client else ""
    ip = (rt.client_address.resolve(peer, forwarded) if forwarded else peer).encode("latin-1")

    ua = user_agent.decode("utf-8", "replace")[:MAX_USER_AGENT] if user_agent else None
    bot = method == "HEAD" or is_bot(ua)
    # The bot bit rides in the signed click id: attribution needs no click row to refuse it.
    click = rt.signer.issue(entry.link_id, datetime.now(UTC), bot=bot)
    day = click.clicked_at.date()
    hasher = rt.visitor_keys.cached_hasher(day)
    if hasher is None:
        # Only when the upkeep has not made the day's key ready: once a day at most.
        try:
            hasher = await rt.visitor_keys.hasher_for(day)
        except Exception:
            log.exception("visitor key lookup failed")
            _UNAVAILABLE.inc()
            await _problem(send, 503, "the click could not be recorded; try again", retry=True)
            return
    subs: dict[str, str] = {}
    for name, value in passthrough:
        if name in _SUB_KEYS and name not in subs:
            subs[name] = value
    record = (
        click.click_uuid,
        click.clicked_at,
        entry.link_id,
        entry.partner_id,
        entry.program_id,
        click.token,
        hasher.digest(b"ip\x00" + ip)[:16] if ip else None,
        hasher.digest(b"v\x00" + ip + b"\x00" + (user_agent or b""))[:16],
        ua,
        referer.decode("utf-8", "replace")[:MAX_REFERER] if referer else None,
        country.decode("ascii").upper() if country and _COUNTRY(country) else None,
        subs.get("sub1"),
        subs.get("sub2"),
        subs.get("sub3"),
        subs.get("sub4"),
        subs.get("sub5"),
        bot,
        entry.attributable and not bot,
        markers,
    )
    location = build_location(
        destination,
        click_param=entry.click_param,
        click_id=click.token,
        fixed_params=entry.params,
        passthrough=passthrough,
    )
    try:
        committed = rt.writer.submit(record)
        if committed is not None:
            # Durable mode: the 302 goes out only once the click is in the database.
            await committed
    except WriterClosed:
        _UNAVAILABLE.inc()
        await _problem(send, 503, "the service is shutting down; try again", retry=True)
        return
    except Exception:
        _UNAVAILABLE.inc()
        await _problem(send, 503, "the click could not be recorded; try again", retry=True)
        return
    _CLICKED.inc()
    await _redirect(send, location.encode("ascii"))


async def _redirect(send: Send, location: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [(b"location", location), _NO_STORE, _EMPTY],
        }
    )
    await send(_EMPTY_BODY)


async def _problem(
    send: Send,
    status: int,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    retry: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(problem_body(status, detail, errors=errors)).encode()
    out = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        _NO_STORE,
    ]
    if retry:
        out.append((b"retry-after", b"1"))
    if headers:
        out.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})
