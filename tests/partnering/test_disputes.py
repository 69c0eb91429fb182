"""Disputes: opened by partners, resolved by an admin through the engine and the review path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from service.models import Agreement, Conversion
from tests.conversions.factories import add_link, click_id, sale
from tests.helpers import assert_problem, error_fields
from tests.partnering.factories import member

TWENTY = {"rules": [{"event": "sale", "type": "percent", "percent": "20"}], "hold_days": 30}


def claim(program: dict, order_id: str, kind: str = "missing", **extra) -> dict:
    return {
        "program_id": program["id"],
        "kind": kind,
        "order_id": order_id,
        "claim_amount": "10.00",
        "evidence": "screenshot of the checkout with our coupon",
        **extra,
    }


async def entries_of(client, admin, conversion_id: str) -> list[dict]:
    r = await client.get(f"/v1/conversions/{conversion_id}", headers=admin)
    return r.json()["commissions"]


async def test_missing_sale_accepted_earns_by_the_terms_of_its_time(client, admin, app):
    program, partner, key = await member(client, admin, app)
    # Unattributed: no click, no code, no customer.
    at = datetime.now(UTC) - timedelta(days=2)
    s = sale(program, amount="250.00", occurred_at=at.isoformat())
    conv = (await client.post("/v1/conversions", json=s, headers=admin)).json()
    assert conv["attribution"]["partner_id"] is None
    # Newer terms pay 20 %; the sale happened under the 10 % of version 1.
    async with app.state.sessionmaker() as session:
        agreement_id = await session.scalar(
            select(Agreement.id).where(Agreement.partner_id == uuid.UUID(partner["id"]))
        )
    r = await client.post(
        f"/v1/agreements/{agreement_id}/versions", json={"terms": TWENTY}, headers=admin
    )
    assert r.status_code == 201, r.text

    r = await client.post("/v1/disputes", json=claim(program, s["order_id"]), headers=key)
    assert r.status_code == 201, r.text
    dispute = r.json()
    assert dispute["status"] == "open" and dispute["claim_amount"] == "10.00"
    r = await client.post(
        f"/v1/disputes/{dispute['id']}/resolve",
        json={"outcome": "accepted", "reason": "the coupon was ours"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted" and r.json()["conversion_id"] == conv["id"]
    after = (await client.get(f"/v1/conversions/{conv['id']}", headers=admin)).json()
    assert after["attribution"]["partner_id"] == partner["id"]
    assert after["attribution"]["method"] == "dispute"
    assert [(e["kind"], e["amount"]) for e in after["commissions"]] == [("commission", "25.00")]
    assert after["commissions"][0]["agreement_version"] == 1
    # What it counted is noted on the stored conversion, as on a sale recorded with its partner.
    async with app.state.sessionmaker() as session:
        stored = await session.get(Conversion, uuid.UUID(conv["id"]))
    assert stored is not None
    assert (stored.agreement_id, stored.agreement_version) == (agreement_id, 1)
    assert stored.counted is True and stored.hold_days is not None
    assert stored.commission_explain["operation"] == "conversion"
    # The partner sees it resolved, with the reason.
    seen = (await client.get(f"/v1/disputes/{dispute['id']}", headers=key)).json()
    assert seen["reason"] == "the coupon was ours"
    # Resolved once.
    r = await client.post(
        f"/v1/disputes/{dispute['id']}/resolve",
        json={"outcome": "declined", "reason": "x"},
        headers=admin,
    )
    assert_problem(r, 409)


async def test_a_sale_of_another_partner_is_not_moved(client, admin, app):
    program, _, key_a = await member(client, admin, app)
    _, _, key_b = await member(client, admin, app, program=program)
    s = sale(program)
    await client.post("/v1/conversions", json=s, headers=admin)
    d = (
        await client.post("/v1/disputes", json=claim(program, s["order_id"]), headers=key_a)
    ).json()
    await client.post(
        f"/v1/disputes/{d['id']}/resolve",
        json={"outcome": "accepted", "reason": "ok"},
        headers=admin,
    )
    d2 = (
        await client.post("/v1/disputes", json=claim(program, s["order_id"]), headers=key_b)
    ).json()
    r = await client.post(
        f"/v1/disputes/{d2['id']}/resolve",
        json={"outcome": "accepted", "reason": "ok"},
        headers=admin,
    )
    problem = assert_problem(r, 409)
    assert "another partner" in problem["detail"]


async def test_declined_sale_accepted_approves_the_held_conversion(client, admin, app):
    program, partner, key = await member(client, admin, app)
    link = await add_link(app, program["id"], partner["id"])
    s = sale(program, click_id=click_id(app, link))
    conv = (await client.post("/v1/conversions", json=s, headers=admin)).json()
    assert conv["attribution"]["partner_id"] == partner["id"]
    r = await client.post(
        f"/v1/conversions/{conv['id']}/review", json={"reason": "checking"}, headers=admin
    )
    assert r.json()["status"] == "review"
    d = (
        await client.post(
            "/v1/disputes", json=claim(program, s["order_id"], kind="declined"), headers=key
        )
    ).json()
    r = await client.post(
        f"/v1/disputes/{d['id']}/resolve",
        json={"outcome": "accepted", "reason": "customer confirmed"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    after = (await client.get(f"/v1/conversions/{conv['id']}", headers=admin)).json()
    assert after["status"] == "accepted"
    assert after["review_reason"] == "customer confirmed"


async def test_dispute_for_an_order_never_recorded_can_be_declined(client, admin, app):
    program, _, key = await member(client, admin, app)
    d = (
        await client.post("/v1/disputes", json=claim(program, "no-such-order"), headers=key)
    ).json()
    r = await client.post(
        f"/v1/disputes/{d['id']}/resolve",
        json={"outcome": "accepted", "reason": "?"},
        headers=admin,
    )
    assert_problem(r, 409)
    r = await client.post(
        f"/v1/disputes/{d['id']}/resolve",
        json={"outcome": "declined", "reason": "we have no such order"},
        headers=admin,
    )
    assert r.status_code == 200
    assert r.json()["status"] == "declined" and r.json()["reason"] == "we have no such order"


async def test_one_open_dispute_per_order_and_valid_fields(client, admin, app):
    program, _, key = await member(client, admin, app)
    body = claim(program, "o-dup")
    assert (await client.post("/v1/disputes", json=body, headers=key)).status_code == 201
    assert "order_id" in error_fields(
        await client.post("/v1/disputes", json=body, headers=key), 409
    )
    assert "claim_amount" in error_fields(
        await client.post(
            "/v1/disputes", json=claim(program, "o2", claim_amount="1.001"), headers=key
        )
    )
    assert "kind" in error_fields(
        await client.post("/v1/disputes", json=claim(program, "o3", kind="other"), headers=key)
    )
    # Admin keys do not open disputes; partners do not resolve them.
    assert_problem(await client.post("/v1/disputes", json=claim(program, "o4"), headers=admin), 403)
    d = (await client.get("/v1/disputes", headers=key)).json()["items"][0]
    r = await client.post(
        f"/v1/disputes/{d['id']}/resolve", json={"outcome": "accepted", "reason": "x"}, headers=key
    )
    assert_problem(r, 403)


async def test_partners_see_only_their_disputes(client, admin, app):
    program, _, key_a = await member(client, admin, app)
    _, _, key_b = await member(client, admin, app, program=program)
    d = (await client.post("/v1/disputes", json=claim(program, "o-a"), headers=key_a)).json()
    assert_problem(await client.get(f"/v1/disputes/{d['id']}", headers=key_b), 404)
    assert d["id"] not in [
        x["id"] for x in (await client.get("/v1/disputes", headers=key_b)).json()["items"]
    ]
    r = await client.get("/v1/disputes?status=open", headers=admin)
    assert d["id"] in [x["id"] for x in r.json()["items"]]
