"""POST /v1/agreements/{id}/simulate: proposed terms beside current terms and the ledger."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from service.models import CommissionEntry, Conversion, Customer, Refund
from tests.conftest import make_key
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem, error_fields

CURRENT = {
    "rules": [
        {"event": "sale", "type": "percent", "percent": "10"},
        {"event": "lead", "type": "flat", "amount": "3.00"},
    ]
}
# 10% up to 1,000.00 of the month's net revenue, 20% above; leads 5.00; parent 5%.
PROPOSED = {
    "rules": [
        {
            "event": "sale",
            "type": "percent",
            "tiers": [{"from": "0", "percent": "10"}, {"from": "1000.00", "percent": "20"}],
        },
        {"event": "lead", "type": "flat", "amount": "5.00"},
    ],
    "parent_override_percent": "5",
}
MARCH = {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _agreement(
    client, admin, *, terms=CURRENT, effective_from="2026-01-01T00:00:00Z", **partner
):
    program = await create_program(client, admin)
    partner_row = await create_partner(client, admin, **partner)
    r = await client.post(
        f"/v1/partners/{partner_row['id']}/agreements",
        json={"program_id": program["id"], "terms": terms, "effective_from": effective_from},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return program, partner_row, r.json()


def _minor(amount: str | None) -> int | None:
    return None if amount is None else int(Decimal(amount) * 100)


async def _conversion(
    session,
    program: dict[str, Any],
    partner_id: str,
    occurred_at: str,
    amount: str | None,
    *,
    type: str = "sale",
    status: str = "accepted",
    **extra: Any,
) -> Conversion:
    row = Conversion(
        program_id=uuid.UUID(program["id"]),
        type=type,
        order_id=secrets.token_hex(6),
        status=status,
        currency=extra.pop("currency", "USD"),
        program_currency="USD",
        occurred_at=at(occurred_at),
        request_hash=hashlib.sha256(secrets.token_bytes(8)).digest(),
        partner_id=uuid.UUID(partner_id),
        amount_minor=extra.pop("amount_minor", _minor(amount)),
        program_amount_minor=_minor(amount),
        **extra,
    )
    session.add(row)
    await session.flush()
    return row


async def _refund(session, conv: Conversion, amount: str, created_at: str) -> Refund:
    row = Refund(
        program_id=conv.program_id,
        conversion_id=conv.id,
        refund_id=secrets.token_hex(6),
        amount_minor=_minor(amount),
        currency="USD",
        program_amount_minor=_minor(amount),
        request_hash=hashlib.sha256(secrets.token_bytes(8)).digest(),
        created_at=at(created_at),
    )
    session.add(row)
    await session.flush()
    return row


def _entry(conv: Conversion, partner_id: str, kind: str, amount: str) -> CommissionEntry:
    return CommissionEntry(
        partner_id=uuid.UUID(partner_id),
        program_id=conv.program_id,
        conversion_id=conv.id,
        kind=kind,
        amount_minor=_minor(amount),
        currency="USD",
        available_at=conv.occurred_at + timedelta(days=30),
        period_month=date(conv.occurred_at.year, conv.occurred_at.month, 1),
        rule_event=conv.type,
    )


async def _simulate(client, admin, agreement_id: str, **body: Any):
    return await client.post(f"/v1/agreements/{agreement_id}/simulate", json=body, headers=admin)


async def test_stored_conversions_current_against_tiered_proposal(client, app, admin):
    parent = await create_partner(client, admin)
    program, partner, agreement = await _agreement(client, admin, parent_id=parent["id"])
    other = await create_partner(client, admin)
    pid = partner["id"]
    async with app.state.sessionmaker() as session:
        c_first = await _conversion(session, program, pid, "2026-03-01T00:00:00Z", "100.00")
        c1 = await _conversion(session, program, pid, "2026-03-05T10:00:00Z", "600.00")
        c2 = await _conversion(session, program, pid, "2026-03-10T10:00:00Z", "800.00")
        lead = await _conversion(
            session, program, pid, "2026-03-12T10:00:00Z", None, type="lead", amount_minor=None
        )
        rejected = await _conversion(
            session, program, pid, "2026-03-15T10:00:00Z", "500.00", status="rejected"
        )
        review = await _conversion(
            session, program, pid, "2026-03-20T10:00:00Z", "0.00", status="review"
        )
        # Outside the period: `to` is exclusive, and a day before `from`.
        after = await _conversion(session, program, pid, "2026-04-01T00:00:00Z", "300.00")
        await _conversion(session, program, pid, "2026-02-28T23:59:59Z", "300.00")
        # Someone else's sale in the same program.
        await _conversion(session, program, other["id"], "2026-03-06T10:00:00Z", "900.00")
        # A refund after the period still belongs to its conversion.
        refund = await _refund(session, c2, "200.00", "2026-04-03T09:00:00Z")
        session.add_all(
            [
                _entry(c_first, pid, "commission", "10.00"),
                _entry(c1, pid, "commission", "60.00"),
                _entry(c2, pid, "commission", "80.00"),
                _entry(c2, pid, "reversal", "-20.00"),
                _entry(lead, pid, "commission", "3.00"),
                _entry(c1, parent["id"], "override", "1.00"),
                _entry(rejected, pid, "commission", "50.00"),
                _entry(rejected, pid, "reversal", "-50.00"),
                _entry(after, pid, "commission", "30.00"),
            ]
        )
        await session.commit()
    assert refund.id

    r = await _simulate(client, admin, agreement["id"], terms=PROPOSED, **MARCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"] == {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
    assert body["currency"] == "USD"
    assert body["conversions"] == 5
    assert body["actual"] == {
        "commission": "133.00",
        "override": "1.00",
        "entries": 6,
        "partner_by_kind": {"commission": "153.00", "reversal": "-20.00"},
        "parent_by_kind": {"override": "1.00"},
    }
    # Current: 10% of 100 + 600 + 800 - 200 = 130.00, plus a 3.00 lead; no override.
    assert body["current_terms"] == {"commission": "133.00", "override": "0.00"}
    # Proposed: 10% of 1,000 + 20% of 300 = 160.00, lead 5.00; parent 5% of each.
    assert body["proposed"]["commission"] == "165.00"
    assert body["proposed"]["override"] == "8.25"
    assert body["proposed"]["months"] == [
        {
            "month": "2026-03-01",
            "event": "lead",
            "revenue": "0.00",
            "count": 1,
            "commission": "5.00",
            "override": "0.25",
        },
        {
            "month": "2026-03-01",
            "event": "sale",
            "revenue": "1300.00",
            "count": 4,
            "commission": "160.00",
            "override": "8.00",
        },
    ]
    assert body["difference"] == {"commission": "32.00", "override": "8.25"}
    lines = {line["conversion_id"]: line for line in body["lines"]}
    assert [line["conversion_id"] for line in body["lines"]] == [
        str(c.id) for c in (c_first, c1, c2, lead, review)
    ]
    assert {k: (v["current"], v["proposed"]) for k, v in lines.items()} == {
        str(c_first.id): ("10.00", "10.00"),
        str(c1.id): ("60.00", "60.00"),
        # 800 crosses into 20% (+130.00), the refund comes off the top bracket (-40.00).
        str(c2.id): ("60.00", "90.00"),
        str(lead.id): ("3.00", "5.00"),
        str(review.id): ("0.00", "0.00"),
    }
    assert all(line["index"] is None and line["month"] == "2026-03-01" for line in body["lines"])
    assert lines[str(review.id)]["reason"]
    assert lines[str(c1.id)]["reason"] is None


async def test_items_in_another_currency_and_recurring_customers(client, app, admin):
    proposed = {
        "rules": [
            {
                "event": "sale",
                "type": "percent",
                "percent": "10",
                "categories": {"gift-cards": "2"},
                "recurring_months": 12,
            }
        ]
    }
    program, partner, agreement = await _agreement(client, admin)
    pid = partner["id"]
    async with app.state.sessionmaker() as session:
        # EUR 300.00 at 1.10 = USD 330.00, of which gift cards 2 x EUR 100.00 = USD 220.00.
        eur = await _conversion(
            session,
            program,
            pid,
            "2026-03-02T12:00:00Z",
            "330.00",
            currency="EUR",
            amount_minor=30000,
            fx_rate=Decimal("1.10"),
            items=[
                {"sku": "g1", "category": "gift-cards", "amount": "100.00", "quantity": 2},
                {"sku": "b1", "category": "books", "amount": "100.00", "quantity": 1},
            ],
        )
        customer = Customer(
            program_id=uuid.UUID(program["id"]),
            external_id=secrets.token_hex(6),
            partner_id=uuid.UUID(pid),
            first_attributed_at=at("2025-01-15T00:00:00Z"),
        )
        session.add(customer)
        await session.flush()
        repeat = await _conversion(
            session,
            program,
            pid,
            "2026-03-03T12:00:00Z",
            "50.00",
            customer_id=customer.id,
            attribution_method="customer",
        )
        # The same customer through a click is not a recurring sale.
        clicked = await _conversion(
            session,
            program,
            pid,
            "2026-03-04T12:00:00Z",
            "40.00",
            customer_id=customer.id,
            attribution_method="click",
        )
        await session.commit()

    r = await _simulate(client, admin, agreement["id"], terms=proposed, **MARCH)
    assert r.status_code == 200, r.text
    body = r.json()
    lines = {line["conversion_id"]: line for line in body["lines"]}
    # 10% of the 110.00 that is not gift cards + 2% of 220.00 = 11.00 + 4.40.
    assert lines[str(eur.id)]["proposed"] == "15.40"
    assert lines[str(eur.id)]["current"] == "33.00"
    # Fourteen months after the customer's first attributed sale: the window has closed.
    assert lines[str(repeat.id)]["proposed"] == "0.00"
    assert lines[str(repeat.id)]["reason"] == "recurring window ended"
    assert lines[str(repeat.id)]["current"] == "5.00"
    assert lines[str(clicked.id)]["proposed"] == "4.00"
    assert body["current_terms"]["commission"] == "42.00"
    assert body["proposed"]["commission"] == "19.40"
    assert body["difference"]["commission"] == "-22.60"
    assert body["actual"]["entries"] == 0 and body["actual"]["commission"] == "0.00"


async def test_body_conversions_with_refunds(client, admin):
    _, _, agreement = await _agreement(client, admin)
    conversions = [
        {"occurred_at": "2026-03-03T10:00:00Z", "type": "sale", "amount": "700.00"},
        {
            "occurred_at": "2026-03-04T10:00:00+02:00",
            "type": "sale",
            "amount": "500.00",
            "refunds": [
                {"amount": "100.00", "occurred_at": "2026-03-08T10:00:00Z"},
                {"amount": "50.00", "occurred_at": "2026-03-09T10:00:00Z"},
            ],
        },
        {"occurred_at": "2026-03-05T10:00:00Z", "type": "lead"},
    ]
    r = await _simulate(
        client, admin, agreement["id"], terms=PROPOSED, conversions=conversions, **MARCH
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["actual"] is None
    assert body["conversions"] == 3
    # Net revenue 700 + 500 - 150 = 1,050: current 105.00 + lead 3.00;
    # proposed 100.00 + 20% of 50.00 + lead 5.00. No parent: no override.
    assert body["current_terms"] == {"commission": "108.00", "override": "0.00"}
    assert body["proposed"]["commission"] == "115.00"
    assert body["proposed"]["override"] == "0.00"
    assert body["difference"] == {"commission": "7.00", "override": "0.00"}
    assert [
        (x["index"], x["conversion_id"], x["current"], x["proposed"]) for x in body["lines"]
    ] == [
        (0, None, "70.00", "70.00"),
        (1, None, "35.00", "40.00"),
        (2, None, "3.00", "5.00"),
    ]


async def test_body_conversions_use_the_version_in_force_at_each(client, admin):
    now = datetime.now(UTC).replace(microsecond=0)
    _, _, agreement = await _agreement(
        client, admin, effective_from=(now - timedelta(days=5)).isoformat()
    )
    v2_at = now + timedelta(days=2)
    r = await client.post(
        f"/v1/agreements/{agreement['id']}/versions",
        json={
            "effective_from": v2_at.isoformat(),
            "terms": {"rules": [{"event": "sale", "type": "percent", "percent": "12.5"}]},
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text

    def sale(when: datetime) -> dict[str, str]:
        return {"occurred_at": when.isoformat(), "type": "sale", "amount": "100.00"}

    r = await _simulate(
        client,
        admin,
        agreement["id"],
        terms={"rules": [{"event": "sale", "type": "percent", "percent": "11"}]},
        conversions=[
            sale(now - timedelta(days=7)),  # before the agreement started
            sale(now - timedelta(days=1)),  # version 1
            sale(v2_at + timedelta(hours=1)),  # version 2
        ],
        **{
            "from": (now - timedelta(days=10)).isoformat(),
            "to": (now + timedelta(days=10)).isoformat(),
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["current"] for x in body["lines"]] == ["0.00", "10.00", "12.50"]
    assert body["lines"][0]["current_reason"] == "no agreement in force at the conversion's time"
    assert [x["proposed"] for x in body["lines"]] == ["11.00", "11.00", "11.00"]
    assert body["current_terms"]["commission"] == "22.50"
    assert body["difference"]["commission"] == "10.50"


async def test_empty_period(client, admin):
    _, _, agreement = await _agreement(client, admin)
    r = await _simulate(client, admin, agreement["id"], terms=PROPOSED, **MARCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["conversions"] == 0 and body["lines"] == []
    assert body["proposed"] == {"commission": "0.00", "override": "0.00", "months": []}
    assert body["actual"]["entries"] == 0


SALE = {"occurred_at": "2026-03-03T10:00:00Z", "type": "sale", "amount": "10.00"}


@pytest.mark.parametrize(
    "change,fields",
    [
        (
            {"terms": {"rules": [{"event": "sale", "type": "percent", "percent": "101"}]}},
            ["terms.rules[0].percent"],
        ),
        ({"terms": {"rules": []}}, ["terms.rules"]),
        ({"to": "2026-03-01T00:00:00Z"}, ["to"]),
        ({"to": "2026-02-01T00:00:00Z"}, ["to"]),
        ({"to": "2027-03-02T00:00:00Z"}, []),  # 366 days: allowed
        ({"to": "2027-03-02T00:00:01Z"}, ["to"]),
        ({"from": "2026-03-01T00:00:00"}, ["from"]),
        ({"from": None}, ["from"]),
        (
            {
                "terms": {"rules": [{"event": "sale", "type": "percent", "percent": "x"}]},
                "to": "2026-02-01T00:00:00Z",
            },
            ["terms.rules[0].percent", "to"],
        ),
        ({"conversions": [SALE, {**SALE, "amount": "1.234"}]}, ["conversions[1].amount"]),
        ({"conversions": [{**SALE, "amount": 10}]}, ["conversions[0].amount"]),
        ({"conversions": [{**SALE, "amount": "-1.00"}]}, ["conversions[0].amount"]),
        ({"conversions": [{**SALE, "amount": None}]}, ["conversions[0].amount"]),
        ({"conversions": [{**SALE, "type": "click"}]}, ["conversions[0].type"]),
        (
            {"conversions": [{**SALE, "occurred_at": "2026-04-01T00:00:00Z"}]},
            ["conversions[0].occurred_at"],
        ),
        (
            {"conversions": [{**SALE, "occurred_at": "2026-03-03T10:00:00"}]},
            ["conversions[0].occurred_at"],
        ),
        (
            {
                "conversions": [
                    {
                        **SALE,
                        "refunds": [
                            {"amount": "6.00", "occurred_at": "2026-03-04T00:00:00Z"},
                            {"amount": "5.00", "occurred_at": "2026-03-05T00:00:00Z"},
                        ],
                    }
                ]
            },
            ["conversions[0].refunds[1].amount"],
        ),
        (
            {"conversions": [{**SALE, "items": [{"sku": "a", "amount": "x", "quantity": 1}]}]},
            ["conversions[0].items[0].amount"],
        ),
        (
            {"conversions": [{**SALE, "items": [{"sku": "a", "amount": "1.00", "quantity": 0}]}]},
            ["conversions[0].items[0].quantity"],
        ),
        ({"conversions": [SALE] * 10_001}, ["conversions"]),
        ({"extra": 1}, ["extra"]),
    ],
)
async def test_requests_are_validated_with_the_field_named(client, admin, change, fields):
    _, _, agreement = await _agreement(client, admin)
    body = {"terms": PROPOSED, **MARCH, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = await client.post(f"/v1/agreements/{agreement['id']}/simulate", json=body, headers=admin)
    if not fields:
        assert r.status_code == 200, r.text
        return
    assert error_fields(r) == fields, r.text


async def test_unknown_agreement_is_404(client, admin):
    r = await _simulate(
        client, admin, "0190f4d6-0000-7000-8000-000000000000", terms=PROPOSED, **MARCH
    )
    assert_problem(r, 404)


async def test_only_admins_simulate(client, app, admin):
    program, partner, agreement = await _agreement(client, admin)
    for headers in (
        await make_key(app, "partner", partner_id=partner["id"]),
        await make_key(app, "finance"),
        await make_key(app, "merchant", program_ids=[program["id"]]),
    ):
        r = await client.post(
            f"/v1/agreements/{agreement['id']}/simulate",
            json={"terms": PROPOSED, **MARCH},
            headers=headers,
        )
        assert_problem(r, 403)
    assert_problem(
        await client.post(
            f"/v1/agreements/{agreement['id']}/simulate", json={"terms": PROPOSED, **MARCH}
        ),
        401,
    )
