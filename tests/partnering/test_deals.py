"""Deal registration: the conflict rule under a lock, decisions, expiry, attribution by deal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

from sqlalchemy import update

from service.kit.time import utc_now
from service.models import Deal
from tests.conversions.factories import sale
from tests.helpers import assert_problem, error_fields
from tests.partnering.factories import member, outsider


def deal(program: dict, **overrides) -> dict:
    body = {
        "program_id": program["id"],
        "company": "Acme Corp",
        "domain": f"acme-{uuid.uuid4().hex[:8]}.example",
        "contact_email": None,
        "expected_value": "12000.00",
        "notes": "met at the fair",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def test_register_normalizes_the_domain(client, admin, app):
    program, partner, key = await member(client, admin, app)
    r = await client.post(
        "/v1/deals", json=deal(program, domain="https://WWW.Acme-Norm.example/pricing"), headers=key
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "submitted"
    assert out["domain"] == "acme-norm.example"
    assert out["partner_id"] == partner["id"]
    assert out["expected_value"] == "12000.00" and out["currency"] == "USD"


async def test_bad_fields_are_422s(client, admin, app):
    program, _, key = await member(client, admin, app)
    assert "domain" in error_fields(
        await client.post("/v1/deals", json=deal(program, domain="not a domain"), headers=key)
    )
    assert "expected_value" in error_fields(
        await client.post("/v1/deals", json=deal(program, expected_value="1.234"), headers=key)
    )
    assert "contact_email" in error_fields(
        await client.post("/v1/deals", json=deal(program, contact_email="nope"), headers=key)
    )
    # A program the partner has no agreement in.
    other, _, _ = await member(client, admin, app)
    assert "program_id" in error_fields(
        await client.post("/v1/deals", json=deal(other), headers=key)
    )


async def test_another_partners_domain_is_409_naming_no_partner(client, admin, app):
    program, first, key_a = await member(client, admin, app)
    _, _, key_b = await member(client, admin, app, program=program)
    body = deal(program)
    assert (await client.post("/v1/deals", json=body, headers=key_a)).status_code == 201
    r = await client.post("/v1/deals", json={**body, "company": "Acme"}, headers=key_b)
    problem = assert_problem(r, 409)
    assert first["id"] not in r.text and first["name"] not in r.text
    assert problem["errors"][0]["field"] == "domain"
    # By the contact email's company domain too.
    r = await client.post(
        "/v1/deals",
        json=deal(program, contact_email=f"cfo@{body['domain']}"),
        headers=key_b,
    )
    assert_problem(r, 409)
    # A free mail address names no company: it blocks nobody.
    await client.post("/v1/deals", json=deal(program, contact_email="x@gmail.com"), headers=key_a)
    r = await client.post(
        "/v1/deals", json=deal(program, contact_email="y@gmail.com"), headers=key_b
    )
    assert r.status_code == 201, r.text


async def test_concurrent_registrations_of_one_domain_make_one_winner(client, admin, app):
    program, _, key_a = await member(client, admin, app)
    keys = [key_a] + [(await member(client, admin, app, program=program))[2] for _ in range(3)]
    body = deal(program)
    answers = await asyncio.gather(*(client.post("/v1/deals", json=body, headers=k) for k in keys))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409, 409, 409], [r.text for r in answers]


async def test_approve_and_reject_with_reasons_the_partner_sees(client, admin, app):
    program, _, key = await member(client, admin, app, deal_days=30)
    a = (await client.post("/v1/deals", json=deal(program), headers=key)).json()
    b = (await client.post("/v1/deals", json=deal(program), headers=key)).json()
    r = await client.post(f"/v1/deals/{a['id']}/approve", json={"reason": "ok"}, headers=admin)
    assert r.status_code == 200, r.text
    approved = r.json()
    assert approved["status"] == "approved"
    decided = datetime.fromisoformat(approved["decided_at"])
    expires = datetime.fromisoformat(approved["expires_at"])
    assert expires - decided == timedelta(days=30)
    r = await client.post(
        f"/v1/deals/{b['id']}/reject", json={"reason": "already our customer"}, headers=admin
    )
    assert r.json()["status"] == "rejected"
    seen = (await client.get(f"/v1/deals/{b['id']}", headers=key)).json()
    assert seen["reason"] == "already our customer"
    assert_problem(await client.post(f"/v1/deals/{b['id']}/approve", json={}, headers=admin), 409)
    # Partners may not decide.
    assert_problem(await client.post(f"/v1/deals/{a['id']}/reject", json={}, headers=key), 403)


async def test_partners_see_only_their_deals(client, admin, app):
    program, _, key_a = await member(client, admin, app)
    _, _, key_b = await member(client, admin, app, program=program)
    mine = (await client.post("/v1/deals", json=deal(program), headers=key_a)).json()
    assert_problem(await client.get(f"/v1/deals/{mine['id']}", headers=key_b), 404)
    listed = (await client.get("/v1/deals", headers=key_b)).json()["items"]
    assert mine["id"] not in [d["id"] for d in listed]
    assert mine["id"] in [
        d["id"] for d in (await client.get("/v1/deals", headers=admin)).json()["items"]
    ]
    # A partner with no agreement cannot register in the program.
    lone = await outsider(client, admin, app)
    assert "program_id" in error_fields(
        await client.post("/v1/deals", json=deal(program), headers=lone)
    )


async def test_an_expired_approval_frees_the_domain(client, admin, app):
    program, _, key_a = await member(client, admin, app)
    _, _, key_b = await member(client, admin, app, program=program)
    body = deal(program)
    d = (await client.post("/v1/deals", json=body, headers=key_a)).json()
    await client.post(f"/v1/deals/{d['id']}/approve", json={}, headers=admin)
    assert_problem(await client.post("/v1/deals", json=body, headers=key_b), 409)
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Deal)
            .where(Deal.id == uuid.UUID(d["id"]))
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
        await session.commit()
    assert (await client.get(f"/v1/deals/{d['id']}", headers=key_a)).json()["status"] == "expired"
    assert (await client.post("/v1/deals", json=body, headers=key_b)).status_code == 201


async def test_attribution_by_deal_where_the_program_lists_it(client, admin, app):
    order = ["promo_code", "click", "deal", "customer"]
    program, partner, key = await member(client, admin, app, attribution_order=order)
    body = deal(program)
    d = (await client.post("/v1/deals", json=body, headers=key)).json()
    buyer = f"buyer@{body['domain']}"
    # Submitted, not yet approved: no attribution.
    r = await client.post(
        "/v1/conversions", json=sale(program, customer_email=buyer), headers=admin
    )
    assert r.json()["attribution"]["partner_id"] is None
    reasons = {x["method"]: x["reason"] for x in r.json()["attribution"]["reasons"]}
    assert reasons["deal"] == "no approved deal holds the customer's domain"
    await client.post(f"/v1/deals/{d['id']}/approve", json={}, headers=admin)
    r = await client.post(
        "/v1/conversions", json=sale(program, customer_email=buyer.upper()), headers=admin
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["attribution"]["method"] == "deal"
    assert out["attribution"]["partner_id"] == partner["id"]
    assert [c["amount"] for c in out["commissions"]] == ["10.00"]
    # A program that does not list the method never uses it.
    plain, _, key2 = await member(client, admin, app)
    body2 = deal(plain)
    d2 = (await client.post("/v1/deals", json=body2, headers=key2)).json()
    await client.post(f"/v1/deals/{d2['id']}/approve", json={}, headers=admin)
    r = await client.post(
        "/v1/conversions", json=sale(plain, customer_email=f"b@{body2['domain']}"), headers=admin
    )
    assert r.json()["attribution"]["partner_id"] is None


async def test_attribution_order_takes_four_methods_without_repeats(client, admin):
    from tests.factories import create_program

    p = await create_program(
        client, admin, attribution_order=["deal", "promo_code", "click", "customer"]
    )
    assert p["attribution_order"][0] == "deal" and p["deal_days"] == 90
    r = await client.post(
        "/v1/programs",
        json={
            **{k: p[k] for k in ("currency", "default_url")},
            "name": "x",
            "attribution_order": ["deal", "deal"],
        },
        headers=admin,
    )
    assert "attribution_order" in error_fields(r)
    r = await client.patch(f"/v1/programs/{p['id']}", json={"deal_days": 0}, headers=admin)
    assert "deal_days" in error_fields(r)
