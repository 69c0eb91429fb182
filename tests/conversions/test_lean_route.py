"""POST /v1/conversions through its LeanJsonRoute (service.kit.leanroute): the common case
served without FastAPI's per-request work, every answer the one FastAPI's route gives."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

from service.kit.leanroute import LeanJsonRoute
from tests.conftest import make_key
from tests.conversions.factories import add_link, click_id, sale, setup

JSON = {"Content-Type": "application/json"}
# A JSON type FastAPI reads as JSON and the lean route hands on: FastAPI's own answer.
HANDED_ON = {"Content-Type": "application/vnd.api+json"}
# What differs between two recordings of equal requests: ids, times, the order and click ids.
_VARYING = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)"
    r'|"(order_id|click_id|refund_id)":"[^"]*"'
)


@pytest.fixture
def handed_on(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests the lean route hands on to FastAPI's route."""
    seen: list[str] = []
    hand_on = LeanJsonRoute._hand_on

    async def spy(self: LeanJsonRoute, scope: Any, receive: Any, send: Any, raw: bytes) -> None:
        seen.append(scope["path"])
        await hand_on(self, scope, receive, send, raw)

    monkeypatch.setattr(LeanJsonRoute, "_hand_on", spy)
    return seen


async def post(
    client: Any,
    body: Any,
    headers: dict[str, str],
    kind: dict[str, str],
    path: str = "/v1/conversions",
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(path, content=raw, headers={**headers, **kind})


def same_answer(lean: Any, fastapi: Any) -> None:
    assert lean.status_code == fastapi.status_code, (lean.text, fastapi.text)
    assert lean.headers["content-type"] == fastapi.headers["content-type"]
    assert _VARYING.sub("", lean.text) == _VARYING.sub("", fastapi.text)


async def test_a_sale_is_served_in_front_of_fastapi_as_fastapi_answers_it(
    app, client, admin, handed_on
):
    # Two programs alike, each with its partner and link: each sale is its partner's first.
    sales, partners = [], []
    for _ in range(2):
        program, partner = await setup(client, admin)
        link = await add_link(app, program["id"], partner["id"])
        sales.append(sale(program, click_id=click_id(app, link)))
        partners.append(partner["id"])
    body, other = sales
    lean = await post(client, body, admin, JSON)
    assert lean.status_code == 201, lean.text
    assert handed_on == []
    fastapi = await post(client, other, admin, HANDED_ON)
    assert handed_on == ["/v1/conversions"]
    same_answer(lean, fastapi)
    # The entries are there, with the partner's commission.
    (entry,) = lean.json()["commissions"]
    assert (entry["partner_id"], entry["amount"]) == (partners[0], "10.00")

    # Replays: 200 and the stored conversion, byte for byte, either way.
    replay_lean = await post(client, body, admin, JSON)
    replay_fastapi = await post(client, body, admin, HANDED_ON)
    assert (replay_lean.status_code, replay_fastapi.status_code) == (200, 200)
    assert replay_lean.content == replay_fastapi.content
    assert replay_lean.json()["id"] == lean.json()["id"]


async def test_refusals_are_fastapis(app, client, admin, handed_on):
    program, partner = await setup(client, admin)
    merchant = await make_key(app, "merchant", program_ids=[uuid.UUID(program["id"])])
    partner_key = await make_key(app, "partner", partner_id=uuid.UUID(partner["id"]))
    body = sale(program)
    cases: list[tuple[Any, dict[str, str], int]] = [
        (body, {}, 401),  # no key
        (body, {"Authorization": "Bearer nope"}, 401),
        (body, partner_key, 403),  # a partner does not record sales
        ({**body, "order_id": "a\u0000b"}, admin, 422),  # text PostgreSQL cannot store
        ({**body, "program_id": str(uuid.uuid4())}, admin, 422),  # no such program
        ({**body, "amount": "12.345"}, admin, 422),  # too many decimals for USD
        ({**body, "currency": "XXX1"}, merchant, 422),
        ({**body, "click_id": "c2garbage"}, merchant, 201),  # recorded, unattributed
    ]
    for case, headers, status in cases:
        # A refused request stores nothing: the same body goes both ways.
        again = {**case, "order_id": f"y-{uuid.uuid4().hex[:8]}"} if status == 201 else case
        lean = await post(client, case, headers, JSON)
        fastapi = await post(client, again, headers, HANDED_ON)
        assert lean.status_code == status, (case, lean.text)
        same_answer(lean, fastapi)
    # Every one of those bodies was valid JSON of the model: none was handed on but the
    # requests sent as another JSON type.
    assert len(handed_on) == len(cases)

    # The same order again with other content: 409, and nothing stored twice.
    first = await post(client, {**body, "order_id": "dup"}, admin, JSON)
    assert first.status_code == 201
    conflict = await post(client, {**body, "order_id": "dup", "amount": "5.00"}, admin, JSON)
    assert conflict.status_code == 409, conflict.text
    listed = await client.get(
        "/v1/conversions", params={"program_id": program["id"], "limit": 100}, headers=admin
    )
    assert [c["order_id"] for c in listed.json()["items"]].count("dup") == 1


async def test_what_fastapi_must_answer_is_handed_on(client, admin, handed_on):
    program, _ = await setup(client, admin)
    body = sale(program)
    cases: list[tuple[bytes | dict[str, Any], dict[str, str]]] = [
        ({**body, "amount": 12}, JSON),  # not the model: FastAPI names the field
        ({"program_id": program["id"]}, JSON),
        (b"{not json", JSON),
        (b"", JSON),
        (body, {"Content-Type": "text/plain"}),
        (body, {}),  # no content type
        ({**body, "unknown": 1}, JSON),
    ]
    for case, kind in cases:
        r = await post(client, case, admin, kind)
        assert r.status_code == 422, (case, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    assert len(handed_on) == len(cases)
    # Another method on the path is FastAPI's to answer.
    r = await client.put("/v1/conversions", json=body, headers=admin)
    assert r.status_code == 405
    assert len(handed_on) == len(cases)


async def test_requests_it_serves_are_counted_under_the_route_template(client, admin):
    program, _ = await setup(client, admin)
    labels = {"method": "POST", "route": "/v1/conversions", "status": "201"}
    before = REGISTRY.get_sample_value("affiliate_http_requests_total", labels) or 0
    r = await post(client, sale(program), admin, JSON)
    assert r.status_code == 201
    assert REGISTRY.get_sample_value("affiliate_http_requests_total", labels) == before + 1


# --- POST /v1/refunds, the other route served in front of FastAPI's ----------------------


async def post_refund(client: Any, body: Any, headers: dict[str, str], kind: dict[str, str]) -> Any:
    return await post(client, body, headers, kind, "/v1/refunds")


async def _two_sales(app: Any, client: Any, admin: dict[str, str]) -> list[tuple[Any, Any]]:
    """Two programs alike, each with its partner and one sale: refunds of the two reverse
    alike (each month holds only its own sale)."""
    sold = []
    for _ in range(2):
        program, partner = await setup(client, admin)
        link = await add_link(app, program["id"], partner["id"])
        r = await client.post(
            "/v1/conversions", json=sale(program, click_id=click_id(app, link)), headers=admin
        )
        assert r.status_code == 201, r.text
        sold.append((program, r.json()))
    return sold


def refund_of(program: Any, sold: Any, amount: str = "25.00") -> dict[str, Any]:
    return {
        "program_id": program["id"],
        "order_id": sold["order_id"],
        "refund_id": f"rf-{uuid.uuid4().hex[:10]}",
        "amount": amount,
    }


async def test_a_refund_is_served_in_front_of_fastapi_as_fastapi_answers_it(
    app, client, admin, handed_on
):
    (program, one), (other_program, other) = await _two_sales(app, client, admin)
    body = refund_of(program, one)
    lean = await post_refund(client, body, admin, JSON)
    assert lean.status_code == 201, lean.text
    assert handed_on == []
    # The same refund id (each program has its own): its reason is in the explanation.
    alike = {**refund_of(other_program, other), "refund_id": body["refund_id"]}
    fastapi = await post_refund(client, alike, admin, HANDED_ON)
    assert handed_on == ["/v1/refunds"]
    same_answer(lean, fastapi)
    (reversal,) = lean.json()["reversals"]
    assert reversal["amount"] == "-2.50" and reversal["kind"] == "reversal"
    # Replays: 200 and the stored refund, byte for byte, either way.
    replay_lean = await post_refund(client, body, admin, JSON)
    replay_fastapi = await post_refund(client, body, admin, HANDED_ON)
    assert (replay_lean.status_code, replay_fastapi.status_code) == (200, 200)
    assert replay_lean.content == replay_fastapi.content
    assert replay_lean.json()["id"] == lean.json()["id"]


async def test_refund_refusals_are_fastapis(app, client, admin, handed_on):
    ((program, one),) = (await _two_sales(app, client, admin))[:1]
    partner_key = await make_key(
        app, "partner", partner_id=uuid.UUID(one["attribution"]["partner_id"])
    )
    body = refund_of(program, one)
    cases: list[tuple[Any, dict[str, str], int]] = [
        (body, {}, 401),
        (body, partner_key, 403),
        ({**body, "order_id": "no-such-order"}, admin, 422),
        ({**body, "amount": "0"}, admin, 422),
        ({**body, "amount": "1000.00"}, admin, 422),  # more than the sale
        ({**body, "program_id": str(uuid.uuid4())}, admin, 422),
    ]
    for case, headers, status in cases:
        lean = await post_refund(client, case, headers, JSON)
        fastapi = await post_refund(client, case, headers, HANDED_ON)
        assert lean.status_code == status, (case, lean.text)
        same_answer(lean, fastapi)
    assert len(handed_on) == len(cases)
    # A refund id already used, with other content: 409 either way.
    assert (await post_refund(client, body, admin, JSON)).status_code == 201
    changed = {**body, "amount": "1.00"}
    lean = await post_refund(client, changed, admin, JSON)
    fastapi = await post_refund(client, changed, admin, HANDED_ON)
    assert lean.status_code == 409
    same_answer(lean, fastapi)
    # A body that is not the model is FastAPI's to answer.
    r = await post_refund(client, {**body, "amount": 5}, admin, JSON)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert handed_on[-1] == "/v1/refunds"
