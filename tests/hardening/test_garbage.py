"""The most frequent requests leave nothing for the cycle collector.

What reference counting cannot free waits for the collector, whose passes over it pause the
process (tens of milliseconds for a thousand requests' worth of a session's objects). A
sale, a refund and a click are called straight into the ASGI stack uvicorn serves, with the
collector off and keeping what it finds, so that any object they leave in a cycle is seen.
"""

from __future__ import annotations

import gc
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp

from tests.conftest import make_key, serving, settings_for_tests
from tests.conversions.factories import add_link, click_id, sale, setup
from tests.helpers import http_scope


async def _call(
    asgi: ASGIApp, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> int:
    # As uvicorn calls the app: no client library of the test's own in between, whose objects
    # would be counted with the app's.
    path, _, query = path.partition("?")
    length = {"host": "aff.test", "content-length": str(len(body))}
    scope = http_scope(method, path, {**headers, **length}, query.encode())
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await asgi(scope, receive, send)
    return status


async def _left_in_cycles(
    request: Callable[[int], Awaitable[int]], times: int
) -> tuple[Counter[str], set[int]]:
    """The objects `times` requests left that only the collector would free, by type, and
    the statuses they were answered with."""
    statuses = {await request(n) for n in range(3)}  # caches, statements and pools warmed
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for n in range(3, 3 + times):
            statuses.add(await request(n))
        gc.collect()
        return Counter(type(o).__qualname__ for o in gc.garbage), statuses
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_sales_refunds_and_clicks_leave_no_cycles(served, client, admin):
    app, asgi = served.app, served.asgi
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    code = (
        await client.get("/v1/links", params={"program_id": program["id"]}, headers=admin)
    ).json()["items"][0]["code"]
    json_headers = {**admin, "content-type": "application/json"}
    orders: list[str] = []

    async def a_sale(n: int) -> int:
        body = sale(program, click_id=click_id(app, link))
        orders.append(body["order_id"])
        return await _call(asgi, "POST", "/v1/conversions", json_headers, json.dumps(body).encode())

    async def a_refund(n: int) -> int:
        body = {"program_id": program["id"], "order_id": orders[n], "amount": "1.00"}
        body["refund_id"] = f"r-{orders[n]}"
        return await _call(asgi, "POST", "/v1/refunds", json_headers, json.dumps(body).encode())

    async def a_click(n: int) -> int:
        visitor = {
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "x-forwarded-for": f"10.0.0.{n}",
        }
        return await _call(asgi, "GET", f"/r/{code}?sub1=garbage", visitor)

    for name, request in (("sale", a_sale), ("refund", a_refund), ("click", a_click)):
        left, statuses = await _left_in_cycles(request, 10)
        assert statuses == {302 if name == "click" else 201}, (name, statuses)
        assert not left, (name, left.most_common(10))


async def test_a_merchant_keys_reads_leave_no_cycles(served, client, admin):
    # Its reads are confined to its program by the scoping function, and a conversion's
    # entries are read with it: neither may leave a statement's parameters in a cycle.
    app, asgi = served.app, served.asgi
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    merchant = await make_key(app, "merchant", program_ids=[uuid.UUID(program["id"])])
    body = sale(program, click_id=click_id(app, link))
    created = await client.post("/v1/conversions", json=body, headers=admin)
    assert created.status_code == 201, created.text
    one = f"/v1/conversions/{created.json()['id']}"
    listed = f"/v1/conversions?program_id={program['id']}&limit=5"
    for path in (one, listed):
        left, statuses = await _left_in_cycles(
            lambda n, p=path: _call(asgi, "GET", p, merchant), 10
        )
        assert statuses == {200}, (path, statuses)
        assert not left, (path, left.most_common(10))


async def test_a_sale_with_a_webhook_subscriber_leaves_no_cycles(database_url, admin):
    # Its events read the conversion's entries back, to put them in the payload.
    settings = settings_for_tests(webhook_allow_private=True)
    async with serving(settings, database_url) as served, served.client() as client:
        app, asgi = served.app, served.asgi
        program, partner = await setup(client, admin)
        link = await add_link(app, program["id"], partner["id"])
        endpoint = {"url": "http://127.0.0.1:9999/hook", "events": ["*"]}
        r = await client.post("/v1/webhook-endpoints", json=endpoint, headers=admin)
        assert r.status_code == 201, r.text
        json_headers = {**admin, "content-type": "application/json"}

        async def a_sale(n: int) -> int:
            body = json.dumps(sale(program, click_id=click_id(app, link))).encode()
            return await _call(asgi, "POST", "/v1/conversions", json_headers, body)

        left, statuses = await _left_in_cycles(a_sale, 10)
        assert statuses == {201}, statuses
        assert not left, left.most_common(10)
