"""Adjustments: an admin's bonus or correction, exact to the minor unit, payable as usual."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from service.models import AuditEvent
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem, error_fields
from tests.partnering.factories import member


def adjustment(program: dict, partner: dict, amount: str, **extra) -> dict:
    return {
        "partner_id": partner["id"],
        "program_id": program["id"],
        "amount": amount,
        "currency": program["currency"],
        "reason": "launch bonus",
        **extra,
    }


async def test_bonus_and_correction_are_ledger_entries_payable_now(client, admin, finance, app):
    program, partner, key = await member(client, admin, app, min_payout="0")
    r = await client.post(
        "/v1/adjustments", json=adjustment(program, partner, "75.50"), headers=admin
    )
    assert r.status_code == 201, r.text
    bonus = r.json()
    assert bonus["kind"] == "adjustment" and bonus["amount"] == "75.50"
    assert bonus["conversion_id"] is None and bonus["explain"]["reason"] == "launch bonus"
    r = await client.post(
        "/v1/adjustments",
        json=adjustment(program, partner, "-5.25", reason="duplicate payout last month"),
        headers=admin,
    )
    assert r.status_code == 201 and r.json()["amount"] == "-5.25"
    # The partner sees both in its commissions.
    mine = (await client.get("/v1/commissions", headers=key)).json()["items"]
    assert sorted(e["amount"] for e in mine if e["kind"] == "adjustment") == ["-5.25", "75.50"]
    # Payable by the usual rules: available now, so in a preview as of a moment later.
    as_of = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    r = await client.get(
        "/v1/payouts/preview", params={"as_of": as_of, "program_id": program["id"]}, headers=finance
    )
    item = next(i for i in r.json()["items"] if i["partner_id"] == partner["id"])
    assert item["payable"] == "70.25"
    async with app.state.sessionmaker() as session:
        actions = (
            await session.scalars(
                select(AuditEvent.action).where(AuditEvent.object_id == uuid.UUID(bonus["id"]))
            )
        ).all()
    assert actions == ["adjustment.created"]


async def test_amounts_are_exact_to_the_minor_unit(client, admin, app):
    program, partner, _ = await member(client, admin, app)
    for bad in ("1.005", "0", "ten", "1e3x"):
        r = await client.post(
            "/v1/adjustments", json=adjustment(program, partner, bad), headers=admin
        )
        assert "amount" in error_fields(r), bad
    jpy, jp_partner, _ = await member(client, admin, app, currency="JPY")
    r = await client.post(
        "/v1/adjustments", json=adjustment(jpy, jp_partner, "100.5"), headers=admin
    )
    assert "amount" in error_fields(r)
    r = await client.post("/v1/adjustments", json=adjustment(jpy, jp_partner, "100"), headers=admin)
    assert r.status_code == 201 and r.json()["amount"] == "100"
    r = await client.post(
        "/v1/adjustments", json=adjustment(program, partner, "1.00", currency="EUR"), headers=admin
    )
    assert "currency" in error_fields(r)


async def test_partner_outside_the_program_and_other_keys_are_refused(client, admin, app):
    program, _, key = await member(client, admin, app)
    stranger = await create_partner(client, admin)
    r = await client.post(
        "/v1/adjustments", json=adjustment(program, stranger, "1.00"), headers=admin
    )
    assert "partner_id" in error_fields(r)
    other = await create_program(client, admin)
    r = await client.post(
        "/v1/adjustments", json=adjustment(other, stranger, "1.00"), headers=admin
    )
    assert "partner_id" in error_fields(r)
    r = await client.post(
        "/v1/adjustments",
        json=adjustment({"id": str(uuid.uuid4()), "currency": "USD"}, stranger, "1.00"),
        headers=admin,
    )
    assert "program_id" in error_fields(r)
    r = await client.post(
        "/v1/adjustments", json=adjustment(program, stranger, "1.00"), headers=key
    )
    assert_problem(r, 403)
