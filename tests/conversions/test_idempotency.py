import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from service.models import CommissionEntry, Conversion
from tests.conversions.factories import add_link, click_id, sale, setup
from tests.helpers import assert_problem

TIERS = {
    "rules": [
        {
            "event": "sale",
            "type": "percent",
            "tiers": [{"from": "0", "percent": "10"}, {"from": "1000.00", "percent": "20"}],
        }
    ]
}


async def test_replay_is_200_and_identical(client, app, admin):
    program, partner = await setup(client, admin)
    body = sale(program, click_id=click_id(app, await add_link(app, program["id"], partner["id"])))
    first = await client.post("/v1/conversions", json=body, headers=admin)
    again = await client.post("/v1/conversions", json=body, headers=admin)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()


async def test_same_order_other_content_is_409(client, admin):
    program, _ = await setup(client, admin)
    body = sale(program)
    assert (await client.post("/v1/conversions", json=body, headers=admin)).status_code == 201
    changed = {**body, "amount": "99.99"}
    problem = assert_problem(await client.post("/v1/conversions", json=changed, headers=admin), 409)
    assert problem["errors"][0]["field"] == "order_id"
    # The same order id as a lead is another conversion.
    lead = {**body, "type": "lead"}
    assert (await client.post("/v1/conversions", json=lead, headers=admin)).status_code == 201


async def test_concurrent_identical_posts_make_one_conversion(client, app, admin):
    program, partner = await setup(client, admin)
    body = sale(program, click_id=click_id(app, await add_link(app, program["id"], partner["id"])))
    results = await asyncio.gather(
        *(client.post("/v1/conversions", json=body, headers=admin) for _ in range(8))
    )
    assert sorted(r.status_code for r in results) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in results}) == 1
    async with app.state.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Conversion)
            .where(Conversion.order_id == body["order_id"])
        )
        entries = await session.scalar(
            select(func.count())
            .select_from(CommissionEntry)
            .where(CommissionEntry.conversion_id == results[0].json()["id"])
        )
    assert count == 1 and entries == 1


async def test_concurrent_sales_crossing_a_tier_total_is_f_of_revenue(client, app, admin):
    program, partner = await setup(client, admin, terms=TIERS)
    link = await add_link(app, program["id"], partner["id"])
    at = datetime.now(UTC) - timedelta(minutes=1)
    amounts = ["300.00", "250.00", "199.99", "400.01", "150.00", "300.00"]
    results = await asyncio.gather(
        *(
            client.post(
                "/v1/conversions",
                json=sale(
                    program, amount=a, click_id=click_id(app, link), occurred_at=at.isoformat()
                ),
                headers=admin,
            )
            for a in amounts
        )
    )
    assert all(r.status_code == 201 for r in results), [r.text for r in results]
    total = sum(Decimal(e["amount"]) for r in results for e in r.json()["commissions"])
    revenue = sum(Decimal(a) for a in amounts)  # 1600.00
    expected = Decimal("1000.00") * Decimal("0.10") + (revenue - 1000) * Decimal("0.20")
    assert total == expected == Decimal("220.00")
