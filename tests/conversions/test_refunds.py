import asyncio
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, exists, func, insert, literal, select

from service.auth.keys import Principal, create_key
from service.conversions.refunds import record_refund
from service.conversions.schemas import RefundCreate
from service.models import (
    AuditEvent,
    CommissionEntry,
    Conversion,
    Payout,
    PayoutEntry,
    PayoutRun,
    Role,
    UnpaidEntry,
)
from tests.conversions.factories import add_link, click_id, sale, setup
from tests.factories import create_partner, unique
from tests.helpers import assert_problem, error_fields


async def _sale(client, app, admin, amount="200.00", terms=None):
    program, partner = await setup(client, admin, terms=terms)
    link = await add_link(app, program["id"], partner["id"])
    r = await client.post(
        "/v1/conversions",
        json=sale(program, amount=amount, click_id=click_id(app, link)),
        headers=admin,
    )
    assert r.status_code == 201
    return program, partner, r.json()


def refund(program, conversion, amount, refund_id=None):
    return {
        "program_id": program["id"],
        "order_id": conversion["order_id"],
        "refund_id": refund_id or unique("rf-"),
        "amount": amount,
    }


async def _balance(app, partner_id):
    async with app.state.sessionmaker() as session:
        return await session.scalar(
            select(func.coalesce(func.sum(CommissionEntry.amount_minor), 0)).where(
                CommissionEntry.partner_id == partner_id
            )
        )


async def test_partial_then_full_refund(client, app, admin):
    program, partner, conv = await _sale(client, app, admin)
    r = await client.post("/v1/refunds", json=refund(program, conv, "50.00"), headers=admin)
    assert r.status_code == 201, r.text
    assert [e["amount"] for e in r.json()["reversals"]] == ["-5.00"]
    assert r.json()["reversals"][0]["kind"] == "reversal"
    r = await client.post("/v1/refunds", json=refund(program, conv, "150.00"), headers=admin)
    assert [e["amount"] for e in r.json()["reversals"]] == ["-15.00"]
    assert await _balance(app, partner["id"]) == 0
    got = (await client.get(f"/v1/conversions/{conv['id']}", headers=admin)).json()
    assert got["refunded_amount"] == "200.00"
    assert sum(Decimal(e["amount"]) for e in got["commissions"]) == 0


async def test_each_refund_stores_the_sales_total_and_its_audit_event(client, app, admin):
    program, _, conv = await _sale(client, app, admin)
    for amount in ("50.00", "150.00"):
        r = await client.post("/v1/refunds", json=refund(program, conv, amount), headers=admin)
        assert r.status_code == 201, r.text
    async with app.state.sessionmaker() as session:
        sold = await session.get(Conversion, uuid.UUID(conv["id"]))
        trail = (
            await session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.object_id == uuid.UUID(conv["id"]),
                    AuditEvent.action == "conversion.refunded",
                )
                .order_by(AuditEvent.id)
            )
        ).all()
    assert sold is not None
    assert (sold.refunded_minor, sold.counted) == (20000, False)  # refunded in full
    assert sold.updated_at > datetime.fromisoformat(conv["updated_at"])
    assert [(e.actor_role, e.data["amount"], e.data["refunded_total"]) for e in trail] == [
        ("admin", "50.00", "50.00"),
        ("admin", "150.00", "200.00"),
    ]
    assert [e.data["reversed"] for e in trail] == ["-5.00", "-15.00"]


async def test_a_refund_of_a_sale_that_earned_nothing_stores_the_refund_alone(client, app, admin):
    program, _ = await setup(client, admin)
    sold = await client.post("/v1/conversions", json=sale(program), headers=admin)
    assert sold.status_code == 201 and sold.json()["attribution"]["partner_id"] is None
    body = refund(program, sold.json(), "40.00")
    r = await client.post("/v1/refunds", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["reversals"] == []
    again = await client.post("/v1/refunds", json=body, headers=admin)
    assert again.status_code == 200 and again.json() == r.json()
    async with app.state.sessionmaker() as session:
        stored = await session.get(Conversion, uuid.UUID(sold.json()["id"]))
        trail = await session.scalar(
            select(AuditEvent).where(
                AuditEvent.object_id == uuid.UUID(sold.json()["id"]),
                AuditEvent.action == "conversion.refunded",
            )
        )
        entries = await session.scalar(
            select(func.count()).where(CommissionEntry.conversion_id == stored.id)
        )
    assert stored.refunded_minor == 4000 and entries == 0
    assert trail is not None
    assert trail.data["reversed"] == "0" and "earned nothing" in trail.data["note"]


async def test_a_sale_the_session_holds_sees_what_each_refund_wrote(client, app, admin):
    # A shop's hook loads the sale through its session, refunds a part, and reads the
    # sale's total again for the next part of the same delivery.
    program, _, conv = await _sale(client, app, admin)
    async with app.state.sessionmaker() as session:
        key, _ = await create_key(session, Role.merchant, program_ids=[uuid.UUID(program["id"])])
        by = Principal(key.id, Role.merchant, frozenset({uuid.UUID(program["id"])}), None)
        await session.commit()
    async with app.state.sessionmaker() as session:
        held = await session.get(Conversion, uuid.UUID(conv["id"]))
        assert held is not None
        for n in range(2):
            body = RefundCreate.model_validate(refund(program, conv, "20.00", f"part-{n}"))
            recorded = await record_refund(session, body, by)
            assert recorded.created and recorded.conversion is not held
            assert held.refunded_minor == recorded.conversion.refunded_minor == 2000 * (n + 1)
        await session.commit()
    async with app.state.sessionmaker() as session:
        stored = await session.get(Conversion, uuid.UUID(conv["id"]))
    assert stored is not None and stored.refunded_minor == 4000


async def test_over_refund_is_422_and_changes_nothing(client, app, admin):
    program, partner, conv = await _sale(client, app, admin)
    await client.post("/v1/refunds", json=refund(program, conv, "150.00"), headers=admin)
    r = await client.post("/v1/refunds", json=refund(program, conv, "50.01"), headers=admin)
    assert error_fields(r) == ["amount"] and "50.00" in r.json()["errors"][0]["message"]
    assert await _balance(app, partner["id"]) == 500
    for bad, field in (("0", "amount"), ("-5", "amount"), ("1.001", "amount")):
        assert field in error_fields(
            await client.post("/v1/refunds", json=refund(program, conv, bad), headers=admin)
        )
    r = await client.post(
        "/v1/refunds",
        json={**refund(program, conv, "1.00"), "order_id": "no-such-order"},
        headers=admin,
    )
    assert error_fields(r) == ["order_id"]


async def test_refund_is_idempotent_on_refund_id(client, app, admin):
    program, partner, conv = await _sale(client, app, admin)
    body = refund(program, conv, "20.00")
    results = await asyncio.gather(
        *(client.post("/v1/refunds", json=body, headers=admin) for _ in range(5))
    )
    assert sorted(r.status_code for r in results) == [200, 200, 200, 200, 201]
    assert len({r.json()["id"] for r in results}) == 1
    assert await _balance(app, partner["id"]) == 2000 - 200
    assert_problem(
        await client.post("/v1/refunds", json={**body, "amount": "21.00"}, headers=admin), 409
    )


async def test_a_refund_id_is_the_programs_once_whatever_order_it_names(client, app, admin):
    program, partner, conv = await _sale(client, app, admin)
    link = await add_link(app, program["id"], partner["id"])
    other = await client.post(
        "/v1/conversions", json=sale(program, click_id=click_id(app, link)), headers=admin
    )
    body = refund(program, conv, "20.00")
    assert (await client.post("/v1/refunds", json=body, headers=admin)).status_code == 201
    moved = await client.post(
        "/v1/refunds", json={**body, "order_id": other.json()["order_id"]}, headers=admin
    )
    assert error_fields(moved, 409) == ["refund_id"]
    # An order the program never recorded: no refund of it can exist, whatever its id.
    nowhere = await client.post(
        "/v1/refunds", json={**body, "order_id": "no-such-order"}, headers=admin
    )
    assert error_fields(nowhere) == ["order_id"]
    got = await client.get(f"/v1/conversions/{other.json()['id']}", headers=admin)
    assert got.json()["refunded_amount"] == "0.00"
    assert await _balance(app, partner["id"]) == 2000 - 200 + 1000


async def test_a_new_refund_answers_its_reversals_as_its_replay_reads_them(client, app, admin):
    # A partner with a parent: the refund reverses the commission and the override.
    parent = await create_partner(client, admin)
    child = await create_partner(client, admin, parent_id=parent["id"])
    terms = {
        "rules": [{"event": "sale", "type": "percent", "percent": "10"}],
        "parent_override_percent": "5",
    }
    program, partner = await setup(client, admin, terms=terms, partner=child)
    link = await add_link(app, program["id"], partner["id"])
    sold = await client.post(
        "/v1/conversions",
        json=sale(program, amount="80.00", click_id=click_id(app, link)),
        headers=admin,
    )
    body = refund(program, sold.json(), "30.00")
    new = await client.post("/v1/refunds", json=body, headers=admin)
    assert new.status_code == 201, new.text
    reversals = new.json()["reversals"]
    assert sorted((e["partner_id"], e["amount"]) for e in reversals) == sorted(
        [(partner["id"], "-3.00"), (parent["id"], "-0.15")]
    )
    replayed = await client.post("/v1/refunds", json=body, headers=admin)
    assert replayed.status_code == 200
    # The same values (an explanation's keys come back from the database in JSONB's order).
    assert replayed.json() == new.json(), (new.text, replayed.text)


async def test_refund_after_payout_leaves_a_negative_balance(client, app, admin):
    program, partner, conv = await _sale(client, app, admin)
    async with app.state.sessionmaker() as session:
        run = PayoutRun(idempotency_key=unique("k"), request_hash=b"0" * 32, as_of=func.now())
        session.add(run)
        await session.flush()
        payout = Payout(
            run_id=run.id,
            partner_id=partner["id"],
            currency="USD",
            amount_minor=2000,
            entry_count=1,
            status="paid",
        )
        session.add(payout)
        await session.flush()
        await session.execute(
            insert(PayoutEntry).from_select(
                ["entry_id", "payout_id"],
                select(CommissionEntry.id, literal(payout.id)).where(
                    CommissionEntry.partner_id == partner["id"]
                ),
            )
        )
        # As a run does: an entry locked into a payout is no longer unpaid.
        await session.execute(
            delete(UnpaidEntry).where(UnpaidEntry.partner_id == uuid.UUID(partner["id"]))
        )
        await session.commit()
    r = await client.post("/v1/refunds", json=refund(program, conv, "200.00"), headers=admin)
    assert r.status_code == 201
    async with app.state.sessionmaker() as session:
        unpaid = await session.scalar(
            select(func.sum(CommissionEntry.amount_minor)).where(
                CommissionEntry.partner_id == partner["id"],
                ~exists().where(PayoutEntry.entry_id == CommissionEntry.id),
            )
        )
    assert unpaid == -2000
    async with app.state.sessionmaker() as session:
        kept = await session.scalar(
            select(func.sum(UnpaidEntry.amount_minor)).where(
                UnpaidEntry.partner_id == uuid.UUID(partner["id"])
            )
        )
    assert kept == -2000


async def test_refund_of_a_tiered_month_is_order_independent(client, app, admin):
    terms = {
        "rules": [
            {
                "event": "sale",
                "type": "percent",
                "tiers": [{"from": "0", "percent": "10"}, {"from": "300.00", "percent": "20"}],
            }
        ]
    }
    program, partner = await setup(client, admin, terms=terms)
    link = await add_link(app, program["id"], partner["id"])
    convs = []
    for amount in ("200.00", "200.00"):
        r = await client.post(
            "/v1/conversions",
            json=sale(program, amount=amount, click_id=click_id(app, link)),
            headers=admin,
        )
        convs.append(r.json())
    # Month: 400 of revenue -> 300*10% + 100*20% = 50.00
    assert await _balance(app, partner["id"]) == 5000
    # Refunding the first (low-tier) sale takes the month back to f(200) = 20.00.
    await client.post("/v1/refunds", json=refund(program, convs[0], "200.00"), headers=admin)
    assert await _balance(app, partner["id"]) == 2000


async def test_refund_of_rejected_conversion_is_409(client, app, admin):
    program, _, conv = await _sale(client, app, admin)
    await client.post(
        f"/v1/conversions/{conv['id']}/reject", json={"reason": "fraud"}, headers=admin
    )
    assert_problem(
        await client.post("/v1/refunds", json=refund(program, conv, "1.00"), headers=admin), 409
    )


async def test_refund_after_termination_reverses_under_the_original_terms(client, app, admin):
    program, partner, conv = await _sale(client, app, admin)
    agreement = (
        await client.get("/v1/agreements", params={"partner_id": partner["id"]}, headers=admin)
    ).json()["items"][0]
    r = await client.post(f"/v1/agreements/{agreement['id']}/terminate", json={}, headers=admin)
    assert r.json()["status"] == "terminated"
    r = await client.post("/v1/refunds", json=refund(program, conv, "200.00"), headers=admin)
    assert r.status_code == 201, r.text
    assert [(e["kind"], e["amount"], e["agreement_version"]) for e in r.json()["reversals"]] == [
        ("reversal", "-20.00", 1)
    ]
    assert await _balance(app, partner["id"]) == 0
