"""Ids in time order, the recurring window, holds of zero days, stored FX rates and
normalized request hashes: what the intake records is what it answers, every time."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update

from service.conversions.schemas import ConversionCreate
from service.models import Conversion, Customer
from tests.conversions.factories import add_link, click_id, sale, setup
from tests.factories import create_program, unique
from tests.helpers import assert_problem


async def test_new_conversions_and_customers_get_time_ordered_ids(client, app, admin):
    program, _ = await setup(client, admin)
    ids = []
    for _ in range(3):
        r = await client.post(
            "/v1/conversions", json=sale(program, customer_id=unique("c-")), headers=admin
        )
        assert r.status_code == 201
        ids.append(uuid.UUID(r.json()["id"]))
    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)
    async with app.state.sessionmaker() as session:
        customers = (
            await session.scalars(
                select(Customer.id).where(Customer.program_id == uuid.UUID(program["id"]))
            )
        ).all()
    assert customers and all(c.version == 7 for c in customers)
    listed = (
        await client.get("/v1/conversions", params={"program_id": program["id"]}, headers=admin)
    ).json()["items"]
    assert [item["id"] for item in listed] == [str(i) for i in ids]


async def test_old_random_ids_page_in_creation_order_while_rows_arrive(client, app, admin):
    program, _ = await setup(client, admin)
    # Rows from before UUIDv7: random ids, created earlier than anything new.
    old_ids = []
    async with app.state.sessionmaker() as session:
        for i in range(4):
            r = await client.post("/v1/conversions", json=sale(program), headers=admin)
            new = uuid.uuid4()
            await session.execute(
                text(
                    "UPDATE conversions SET id = :new, created_at = :at WHERE id = :id"
                ).bindparams(
                    new=new,
                    at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i),
                    id=uuid.UUID(r.json()["id"]),
                )
            )
            old_ids.append(new)
        await session.commit()
    seen: list[str] = []
    created: list[str] = []
    cursor = None
    while True:
        params = {"program_id": program["id"], "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/conversions", params=params, headers=admin)).json()
        seen.extend(item["id"] for item in page["items"])
        if len(created) < 3:
            r = await client.post("/v1/conversions", json=sale(program), headers=admin)
            created.append(r.json()["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:4] == [str(i) for i in old_ids]
    assert seen[4:] == created  # nothing created while paging was skipped or repeated
    assert len(seen) == len(set(seen))


async def test_a_lead_does_not_use_up_the_first_sale_window(client, app, admin):
    terms = {
        "rules": [
            {"event": "sale", "type": "percent", "percent": "10", "recurring_months": 0},
            {"event": "lead", "type": "flat", "amount": "3.00"},
        ],
        "hold_days": 0,
    }
    program, partner = await setup(client, admin, terms=terms)
    link = await add_link(app, program["id"], partner["id"])
    customer = unique("cust-")
    lead = await client.post(
        "/v1/conversions",
        json={
            "program_id": program["id"],
            "type": "lead",
            "order_id": unique("lead-"),
            "customer_id": customer,
            "click_id": click_id(app, link),
        },
        headers=admin,
    )
    assert lead.status_code == 201
    assert [e["amount"] for e in lead.json()["commissions"]] == ["3.00"]
    first = await client.post(
        "/v1/conversions", json=sale(program, customer_id=customer), headers=admin
    )
    assert first.json()["attribution"]["method"] == "customer"
    assert [e["amount"] for e in first.json()["commissions"]] == ["10.00"]
    second = await client.post(
        "/v1/conversions", json=sale(program, customer_id=customer), headers=admin
    )
    assert second.json()["attribution"]["method"] == "customer"
    assert second.json()["commissions"] == []


async def test_a_refund_keeps_a_zero_day_hold_of_the_terms(client, app, admin):
    # 10% of 0.01 rounds to nothing: the first sale writes no entry, yet counts.
    terms = {"rules": [{"event": "sale", "type": "percent", "percent": "10"}], "hold_days": 0}
    program, partner = await setup(client, admin, terms=terms, hold_days=30)
    link = await add_link(app, program["id"], partner["id"])
    at = datetime.now(UTC) - timedelta(hours=1)
    clicked = click_id(app, link, at - timedelta(minutes=5))
    tiny = await client.post(
        "/v1/conversions",
        json=sale(program, amount="0.05", click_id=clicked, occurred_at=at.isoformat()),
        headers=admin,
    )
    assert tiny.json()["commissions"] == []
    big = await client.post(
        "/v1/conversions",
        json=sale(program, amount="0.10", click_id=clicked, occurred_at=at.isoformat()),
        headers=admin,
    )
    assert [e["amount"] for e in big.json()["commissions"]] == ["0.02"]
    r = await client.post(
        "/v1/refunds",
        json={
            "program_id": program["id"],
            "order_id": tiny.json()["order_id"],
            "refund_id": unique("rf-"),
            "amount": "0.05",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    reversals = r.json()["reversals"]
    assert [e["amount"] for e in reversals] == ["-0.01"]
    available = datetime.fromisoformat(reversals[0]["available_at"])
    assert abs(available - at) < timedelta(seconds=1)  # 0 days, not the program's 30


async def test_an_inverted_rate_is_answered_as_stored_and_reused_by_refunds(client, app, admin):
    program, partner = await setup(client, admin, currency="USD")
    link = await add_link(app, program["id"], partner["id"])
    day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    r = await client.post(
        "/v1/fx-rates",
        json={"base_currency": "USD", "quote_currency": "JPY", "rate": "151.37", "date": day},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    body = sale(program, amount="12345", currency="JPY", click_id=click_id(app, link))
    first = await client.post("/v1/conversions", json=body, headers=admin)
    again = await client.post("/v1/conversions", json=body, headers=admin)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json() == again.json()
    assert first.json()["fx_rate"] == "0.006606328863"
    async with app.state.sessionmaker() as session:
        stored = await session.scalar(
            select(Conversion.fx_rate).where(Conversion.id == uuid.UUID(first.json()["id"]))
        )
    assert f"{stored.normalize():f}" == first.json()["fx_rate"]
    refund = await client.post(
        "/v1/refunds",
        json={
            "program_id": program["id"],
            "order_id": body["order_id"],
            "refund_id": unique("rf-"),
            "amount": "12345",
        },
        headers=admin,
    )
    assert refund.status_code == 201
    assert refund.json()["program_amount"] == first.json()["program_amount"]


async def test_the_same_request_written_another_way_is_a_replay(client, app, admin):
    program, _ = await setup(client, admin, currency="USD")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    body = sale(program, amount="100.00", occurred_at=at.isoformat())
    first = await client.post("/v1/conversions", json=body, headers=admin)
    assert first.status_code == 201
    other_offset = at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Kolkata")).isoformat()
    for variant in (
        {**body, "occurred_at": other_offset},
        {**body, "currency": "USD"},
        {**body, "amount": "100"},
        {**body, "items": [], "metadata": {}},
    ):
        r = await client.post("/v1/conversions", json=variant, headers=admin)
        assert r.status_code == 200, (variant, r.text)
        assert r.json()["id"] == first.json()["id"]
    changed = await client.post("/v1/conversions", json={**body, "amount": "100.01"}, headers=admin)
    assert changed.status_code == 409


async def test_a_request_stored_under_the_old_hash_still_replays(client, app, admin):
    from service.conversions.intake import _legacy_hash

    program = await create_program(client, admin)
    body = sale(program, type="lead", amount=None)
    del body["amount"]
    first = await client.post("/v1/conversions", json=body, headers=admin)
    assert first.status_code == 201
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Conversion)
            .where(Conversion.id == uuid.UUID(first.json()["id"]))
            .values(request_hash=_legacy_hash(ConversionCreate.model_validate(body)))
        )
        await session.commit()
    assert (await client.post("/v1/conversions", json=body, headers=admin)).status_code == 200


async def stored_customer(app, program, external_id):
    async with app.state.sessionmaker() as session:
        return await session.scalar(
            select(Customer).where(
                Customer.program_id == uuid.UUID(program["id"]),
                Customer.external_id == external_id,
            )
        )


async def test_a_sale_waits_for_its_customer_and_sees_the_binding_made_meanwhile(
    client, app, admin
):
    # The customer's row is locked from its upsert to the commit: two sales of one customer
    # take turns, the second seeing what the first bound. Here the first is a transaction
    # of the test's own, holding the row while it binds the customer to a partner.
    program, partner = await setup(client, admin)
    customer_id = unique("cust-")
    seen = await client.post(
        "/v1/conversions", json=sale(program, customer_id=customer_id), headers=admin
    )
    assert seen.json()["attribution"]["partner_id"] is None  # the row exists, unbound
    first_at = datetime.now(UTC) - timedelta(days=1)
    first_conversion = uuid.UUID(seen.json()["id"])
    async with app.state.sessionmaker() as holder:
        customer = await holder.scalar(
            select(Customer)
            .where(
                Customer.program_id == uuid.UUID(program["id"]),
                Customer.external_id == customer_id,
            )
            .with_for_update()
        )
        assert customer is not None and customer.partner_id is None
        waiting = asyncio.create_task(
            client.post(
                "/v1/conversions", json=sale(program, customer_id=customer_id), headers=admin
            )
        )
        await asyncio.sleep(0.5)
        assert not waiting.done()  # blocked on the customer's row
        customer.partner_id = uuid.UUID(partner["id"])
        customer.first_conversion_id = first_conversion
        customer.first_attributed_at = first_at
        await holder.commit()
    answer = await asyncio.wait_for(waiting, 30)
    assert answer.status_code == 201
    assert answer.json()["attribution"]["method"] == "customer"
    assert answer.json()["attribution"]["partner_id"] == partner["id"]
    stored = await stored_customer(app, program, customer_id)
    # Bound once: the later sale changed nothing.
    assert stored is not None
    assert (stored.partner_id, stored.first_conversion_id, stored.first_attributed_at) == (
        uuid.UUID(partner["id"]),
        first_conversion,
        first_at,
    )


async def test_a_customers_first_attributed_sale_binds_it_in_the_database(client, app, admin):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    customer_id = unique("cust-")
    first = await client.post(
        "/v1/conversions",
        json=sale(program, customer_id=customer_id, click_id=click_id(app, link)),
        headers=admin,
    )
    assert first.json()["attribution"]["method"] == "click"
    again = await client.post(
        "/v1/conversions", json=sale(program, customer_id=customer_id), headers=admin
    )
    assert again.json()["attribution"]["method"] == "customer"
    stored = await stored_customer(app, program, customer_id)
    assert stored is not None
    assert stored.partner_id == uuid.UUID(partner["id"])
    assert stored.first_conversion_id == uuid.UUID(first.json()["id"])
    assert stored.first_attributed_at == datetime.fromisoformat(first.json()["occurred_at"])


async def test_an_order_taken_with_other_content_binds_no_customer(client, app, admin):
    # The binding goes in with the conversion's insert: a request refused there leaves the
    # customer unbound.
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    body = sale(program, click_id=click_id(app, link))
    assert (await client.post("/v1/conversions", json=body, headers=admin)).status_code == 201
    customer_id = unique("cust-")
    taken = await client.post(
        "/v1/conversions", json={**body, "customer_id": customer_id}, headers=admin
    )
    assert_problem(taken, 409)
    stored = await stored_customer(app, program, customer_id)
    # Its row may be made on first sight (harmless); it is bound to nothing.
    assert stored is None or (stored.partner_id, stored.first_conversion_id) == (None, None)
