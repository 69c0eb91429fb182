from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from service.models import AuditEvent
from tests.conftest import make_key
from tests.conversions.factories import add_link, click_id, sale, setup
from tests.factories import create_program
from tests.helpers import assert_problem, error_fields


async def test_reject_reverses_and_shows_the_reason(client, app, admin):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    conv = (
        await client.post(
            "/v1/conversions", json=sale(program, click_id=click_id(app, link)), headers=admin
        )
    ).json()
    r = await client.post(
        f"/v1/conversions/{conv['id']}/reject", json={"reason": "order cancelled"}, headers=admin
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "rejected" and body["review_reason"] == "order cancelled"
    assert sorted(e["amount"] for e in body["commissions"]) == ["-10.00", "10.00"]
    key = await make_key(app, "partner", partner_id=partner["id"])
    seen = (await client.get(f"/v1/conversions/{conv['id']}", headers=key)).json()
    assert seen["review_reason"] == "order cancelled"
    again = await client.post(f"/v1/conversions/{conv['id']}/reject", json={}, headers=admin)
    assert_problem(again, 409)
    async with app.state.sessionmaker() as session:
        actions = [
            e.action
            for e in (
                await session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.object_id == conv["id"])
                    .order_by(AuditEvent.created_at)
                )
            ).all()
        ]
    assert actions == ["conversion.recorded", "conversion.reject"]


async def test_review_then_approve(client, app, admin):
    program, partner = await setup(client, admin)
    conv = (
        await client.post(
            "/v1/conversions",
            json=sale(
                program, click_id=click_id(app, await add_link(app, program["id"], partner["id"]))
            ),
            headers=admin,
        )
    ).json()
    assert_problem(
        await client.post(f"/v1/conversions/{conv['id']}/approve", json={}, headers=admin), 409
    )
    held = await client.post(
        f"/v1/conversions/{conv['id']}/review", json={"reason": "check"}, headers=admin
    )
    assert held.json()["status"] == "review"
    ok = await client.post(f"/v1/conversions/{conv['id']}/approve", json={}, headers=admin)
    assert ok.json()["status"] == "accepted"
    merchant = await make_key(app, "merchant", program_ids=[program["id"]])
    assert_problem(
        await client.post(f"/v1/conversions/{conv['id']}/reject", json={}, headers=merchant), 403
    )


async def test_fx_conversion_uses_the_dated_rate(client, app, admin):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    occurred = datetime(2026, 10, 15, 12, tzinfo=UTC)
    body = sale(
        program,
        amount="100.00",
        currency="EUR",
        click_id=click_id(app, link, occurred - timedelta(hours=1)),
        occurred_at=occurred.isoformat(),
    )
    missing = await client.post("/v1/conversions", json=body, headers=admin)
    assert error_fields(missing) == ["currency"]
    assert "EUR->USD" in missing.json()["errors"][0]["message"]
    for day, rate in ((date(2026, 10, 1), "1.10"), (date(2026, 10, 16), "1.50")):
        r = await client.post(
            "/v1/fx-rates",
            json={
                "base_currency": "EUR",
                "quote_currency": "USD",
                "rate": rate,
                "date": day.isoformat(),
            },
            headers=admin,
        )
        assert r.status_code == 201
    r = await client.post("/v1/conversions", json=body, headers=admin)
    assert r.status_code == 201, r.text
    conv = r.json()
    assert conv["amount"] == "100.00" and conv["currency"] == "EUR"
    assert conv["program_amount"] == "110.00" and conv["program_currency"] == "USD"
    assert conv["fx_rate"] == "1.1"
    assert [e["amount"] for e in conv["commissions"]] == ["11.00"]
    listed = (
        await client.get("/v1/fx-rates", params={"base_currency": "EUR"}, headers=admin)
    ).json()
    assert [x["rate"] for x in listed][:2] == ["1.5", "1.1"]


async def test_fx_rate_validation(client, admin):
    for body, field in (
        (
            {"base_currency": "EUR", "quote_currency": "EUR", "rate": "1", "date": "2026-01-01"},
            "quote_currency",
        ),
        (
            {"base_currency": "EUX", "quote_currency": "USD", "rate": "1", "date": "2026-01-01"},
            "base_currency",
        ),
        (
            {"base_currency": "EUR", "quote_currency": "USD", "rate": "0", "date": "2026-01-01"},
            "rate",
        ),
        (
            {"base_currency": "EUR", "quote_currency": "USD", "rate": 1.1, "date": "2026-01-01"},
            "rate",
        ),
        ({"base_currency": "EUR", "quote_currency": "USD", "rate": "1", "date": "someday"}, "date"),
    ):
        assert field in error_fields(await client.post("/v1/fx-rates", json=body, headers=admin))


async def test_jpy_and_kwd_programs(client, app, admin):
    jpy = await create_program(client, admin, currency="JPY", min_payout="0")
    program, partner = await setup(client, admin, program=jpy)
    link = await add_link(app, program["id"], partner["id"])
    r = await client.post(
        "/v1/conversions",
        json=sale(program, amount="1005", click_id=click_id(app, link)),
        headers=admin,
    )
    assert [e["amount"] for e in r.json()["commissions"]] == ["100"]
    kwd = await create_program(client, admin, currency="KWD", min_payout="0")
    program, partner = await setup(client, admin, program=kwd)
    link = await add_link(app, program["id"], partner["id"])
    r = await client.post(
        "/v1/conversions",
        json=sale(program, amount="12.345", click_id=click_id(app, link)),
        headers=admin,
    )
    assert [e["amount"] for e in r.json()["commissions"]] == ["1.234"]


async def test_a_rate_either_way_round_in_one_lookup(client, app, admin):
    # JPY: no other test of the module stores it. Stored only as USD->JPY, a sale in JPY
    # is converted at its inverse; once JPY->USD is stored too, that direct rate is used.
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    occurred = datetime(2026, 10, 15, 12, tzinfo=UTC)

    async def store(base: str, quote: str, rate: str, day: date) -> None:
        r = await client.post(
            "/v1/fx-rates",
            json={
                "base_currency": base,
                "quote_currency": quote,
                "rate": rate,
                "date": day.isoformat(),
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text

    def jpy_sale() -> dict:
        return sale(
            program,
            amount="1000",
            currency="JPY",
            click_id=click_id(app, link, occurred - timedelta(hours=1)),
            occurred_at=occurred.isoformat(),
        )

    await store("USD", "JPY", "160", date(2026, 10, 10))
    await store("USD", "JPY", "100", date(2026, 10, 20))  # after the sale: not used
    inverse = await client.post("/v1/conversions", json=jpy_sale(), headers=admin)
    assert inverse.status_code == 201, inverse.text
    assert inverse.json()["fx_rate"] == "0.00625"  # 1/160
    assert inverse.json()["program_amount"] == "6.25"
    await store("JPY", "USD", "0.0065", date(2026, 10, 1))
    direct = await client.post("/v1/conversions", json=jpy_sale(), headers=admin)
    assert direct.json()["fx_rate"] == "0.0065"
    assert direct.json()["program_amount"] == "6.50"
