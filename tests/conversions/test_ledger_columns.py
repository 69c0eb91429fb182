"""What a conversion counted and its hold are columns of its row, not keys in attribution."""

import uuid

import orjson
from sqlalchemy import select

from service.auth.keys import Principal
from service.conversions.api import answer_json, conversion_body
from service.ledger import repository as ledger
from service.models import Conversion, MonthTotal, Role
from tests.conversions.factories import add_link, click_id, sale, setup

TERMS = {"rules": [{"event": "sale", "type": "percent", "percent": "10"}], "hold_days": 0}


async def _row(app, conversion_id: str) -> Conversion:
    async with app.state.sessionmaker() as session:
        row = await session.get(Conversion, uuid.UUID(conversion_id))
        assert row is not None
        return row


async def test_a_sale_counts_with_its_hold_until_refunded_in_full(client, app, admin):
    program, partner = await setup(client, admin, terms=TERMS)
    link = await add_link(app, program["id"], partner["id"])
    body = sale(program, amount="80.00", click_id=click_id(app, link))
    conv = (await client.post("/v1/conversions", json=body, headers=admin)).json()
    row = await _row(app, conv["id"])
    assert row.counted is True
    assert row.hold_days == 0
    assert row.commission_note is None
    assert row.commission_explain is not None
    assert row.commission_explain["month_total_after"] == "8.00"
    assert "ledger" not in row.attribution

    refund = {
        "program_id": program["id"],
        "order_id": conv["order_id"],
        "refund_id": f"rf-{conv['id']}",
        "amount": "80.00",
    }
    r = await client.post("/v1/refunds", json=refund, headers=admin)
    assert r.status_code == 201, r.text
    assert (await _row(app, conv["id"])).counted is False


async def test_a_partner_without_terms_counts_nothing_and_says_why(client, app, admin):
    _, partner = await setup(client, admin, terms=TERMS)
    other, _ = await setup(client, admin, terms=TERMS)
    # The partner's link in a program where it has no terms of its own.
    link = await add_link(app, other["id"], partner["id"])
    body = sale(other, click_id=click_id(app, link))
    conv = (await client.post("/v1/conversions", json=body, headers=admin)).json()
    assert conv["attribution"]["partner_id"] == partner["id"], conv
    row = await _row(app, conv["id"])
    assert row.counted is False
    assert row.hold_days is None
    assert row.commission_note == "no agreement in force at occurred_at"
    assert "ledger" not in row.attribution
    # Its month is locked with the read of the terms, before they say it earns nothing:
    # the row may be there, holding nothing counted.
    async with app.state.sessionmaker() as session:
        states = await session.scalars(
            select(MonthTotal.state).where(
                MonthTotal.partner_id == uuid.UUID(partner["id"]),
                MonthTotal.program_id == uuid.UUID(other["id"]),
            )
        )
        assert list(states) in ([], [{}])


async def test_a_body_read_from_a_row_with_expired_columns_loads_them(client, app, admin):
    program, partner = await setup(client, admin, terms=TERMS)
    link = await add_link(app, program["id"], partner["id"])
    body = sale(program, amount="80.00", click_id=click_id(app, link))
    answered = (await client.post("/v1/conversions", json=body, headers=admin)).json()
    principal = Principal(
        key_id=uuid.uuid4(), role=Role.admin, program_ids=frozenset(), partner_id=None
    )
    async with app.state.sessionmaker() as session:
        row = await session.get(Conversion, uuid.UUID(answered["id"]))
        assert row is not None
        entries = (await ledger.by_conversion(session, principal, [row.id]))[row.id]
        # Expired, as after a commit with expire_on_commit: not in the instances' dicts.
        session.expire(row, ["order_id", "amount_minor", "attribution"])
        session.expire(entries[0], ["amount_minor", "explain"])
        assert "order_id" not in vars(row) and "explain" not in vars(entries[0])
        # Read through the attributes, which load them (in the session's own greenlet).
        written = await session.run_sync(
            lambda _: answer_json(conversion_body(row, entries, principal))
        )
    again = orjson.loads(written)
    assert again == answered
