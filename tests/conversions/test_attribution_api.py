"""Each attribution path and each failure reason, through the API."""

from datetime import UTC, datetime, timedelta

from tests.conftest import make_key
from tests.conversions.factories import add_link, add_promo, click_id, sale, setup
from tests.factories import create_partner
from tests.helpers import assert_problem, error_fields


def reasons(body):
    return {r["method"]: r["reason"] for r in body["attribution"]["reasons"]}


async def test_click_attribution_earns_ten_percent(client, app, admin):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    occurred = datetime.now(UTC) - timedelta(minutes=1)
    r = await client.post(
        "/v1/conversions",
        json=sale(
            program, amount="123.45", click_id=click_id(app, link), occurred_at=occurred.isoformat()
        ),
        headers=admin,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "accepted"
    assert body["attribution"]["method"] == "click"
    assert body["attribution"]["partner_id"] == partner["id"]
    assert reasons(body) == {"promo_code": "no promo code sent"}
    [entry] = body["commissions"]
    assert entry["kind"] == "commission" and entry["amount"] == "12.34"
    assert entry["partner_id"] == partner["id"] and entry["agreement_version"] == 1
    available = datetime.fromisoformat(entry["available_at"])
    assert available == occurred + timedelta(days=30)
    assert entry["explain"]["rounding"]


async def test_promo_code_wins_over_click(client, app, admin):
    program, partner = await setup(client, admin)
    _, other = await setup(client, admin, program=program)
    link = await add_link(app, program["id"], other["id"])
    code = await add_promo(app, program["id"], partner["id"])
    r = await client.post(
        "/v1/conversions",
        json=sale(program, promo_code=code.lower(), click_id=click_id(app, link)),
        headers=admin,
    )
    body = r.json()
    assert body["attribution"]["method"] == "promo_code"
    assert body["attribution"]["partner_id"] == partner["id"]


async def test_program_order_can_put_click_first(client, app, admin):
    program, partner = await setup(client, admin, attribution_order=["click", "promo_code"])
    _, other = await setup(client, admin, program=program)
    link = await add_link(app, program["id"], partner["id"])
    code = await add_promo(app, program["id"], other["id"])
    r = await client.post(
        "/v1/conversions",
        json=sale(program, promo_code=code, click_id=click_id(app, link)),
        headers=admin,
    )
    assert r.json()["attribution"]["partner_id"] == partner["id"]


async def test_promo_code_failures_are_explained(client, app, admin):
    program, partner = await setup(client, admin)
    now = datetime.now(UTC)
    expired = await add_promo(app, program["id"], partner["id"], valid_to=now - timedelta(days=1))
    future = await add_promo(app, program["id"], partner["id"], valid_from=now + timedelta(days=1))
    once = await add_promo(app, program["id"], partner["id"], max_uses=1)
    disabled = await add_promo(app, program["id"], partner["id"])
    from sqlalchemy import update

    from service.models import PromoCode

    async with app.state.sessionmaker() as session:
        await session.execute(
            update(PromoCode).where(PromoCode.code == disabled).values(status="disabled")
        )
        await session.commit()
    cases = {
        "NOPE-NOT-A-CODE": "promo code unknown",
        expired: "promo code expired",
        future: "promo code not yet valid",
        disabled: "promo code disabled",
    }
    for code, why in cases.items():
        r = await client.post("/v1/conversions", json=sale(program, promo_code=code), headers=admin)
        assert r.status_code == 201
        assert r.json()["attribution"]["method"] is None
        assert reasons(r.json())["promo_code"] == why
    first = await client.post("/v1/conversions", json=sale(program, promo_code=once), headers=admin)
    assert first.json()["attribution"]["method"] == "promo_code"
    second = await client.post(
        "/v1/conversions", json=sale(program, promo_code=once), headers=admin
    )
    assert reasons(second.json())["promo_code"] == "promo code used up"


async def test_click_failures_are_explained(client, app, admin):
    program, partner = await setup(client, admin, attribution_window_days=7)
    other_program, _ = await setup(client, admin, partner=partner)
    link = await add_link(app, program["id"], partner["id"])
    foreign = await add_link(app, other_program["id"], partner["id"])
    good = click_id(app, link)
    tampered = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
    now = datetime.now(UTC)
    cases = {
        "c1garbage": "click id malformed",
        tampered: "click id signature invalid",
        click_id(app, foreign): "click id belongs to another program",
        click_id(
            app, link, now - timedelta(days=7, seconds=5)
        ): "click outside the attribution window (7 days)",
    }
    for token, why in cases.items():
        r = await client.post("/v1/conversions", json=sale(program, click_id=token), headers=admin)
        assert r.status_code == 201, r.text
        assert r.json()["attribution"]["method"] is None, token
        assert why in reasons(r.json())["click"], (token, reasons(r.json()))
        assert r.json()["commissions"] == []


async def test_window_boundary_inclusive(client, app, admin):
    program, partner = await setup(client, admin, attribution_window_days=7)
    link = await add_link(app, program["id"], partner["id"])
    occurred = datetime.now(UTC).replace(microsecond=0)
    clicked = occurred - timedelta(days=7)
    r = await client.post(
        "/v1/conversions",
        json=sale(program, click_id=click_id(app, link, clicked), occurred_at=occurred.isoformat()),
        headers=admin,
    )
    assert r.json()["attribution"]["method"] == "click"


async def test_suspended_partner_is_not_attributed(client, app, admin):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    await client.patch(f"/v1/partners/{partner['id']}", json={"status": "suspended"}, headers=admin)
    r = await client.post(
        "/v1/conversions", json=sale(program, click_id=click_id(app, link)), headers=admin
    )
    assert reasons(r.json())["click"] == "partner suspended"
    code = await add_promo(app, program["id"], partner["id"])
    by_code = await client.post(
        "/v1/conversions", json=sale(program, promo_code=code.lower()), headers=admin
    )
    assert by_code.json()["attribution"]["partner_id"] is None
    assert reasons(by_code.json())["promo_code"] == "partner suspended"


async def test_a_renewal_is_its_customers_partners_while_the_partner_is_active(client, app, admin):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    first = await client.post(
        "/v1/conversions",
        json=sale(program, customer_id="renewing", click_id=click_id(app, link)),
        headers=admin,
    )
    assert first.json()["attribution"]["method"] == "click"
    renewal = await client.post(
        "/v1/conversions", json=sale(program, customer_id="renewing"), headers=admin
    )
    assert renewal.json()["attribution"]["method"] == "customer"
    assert renewal.json()["attribution"]["partner_id"] == partner["id"]
    await client.patch(f"/v1/partners/{partner['id']}", json={"status": "suspended"}, headers=admin)
    later = await client.post(
        "/v1/conversions", json=sale(program, customer_id="renewing"), headers=admin
    )
    assert later.json()["attribution"]["partner_id"] is None
    assert reasons(later.json())["customer"] == "partner suspended"


async def test_customer_attribution_and_recurring_window(client, app, admin):
    terms = {
        "rules": [{"event": "sale", "type": "percent", "percent": "10", "recurring_months": 2}]
    }
    program, partner = await setup(client, admin, terms=terms)
    link = await add_link(app, program["id"], partner["id"])
    first_at = datetime(2026, 6, 15, 12, tzinfo=UTC)
    first = await client.post(
        "/v1/conversions",
        json=sale(
            program,
            customer_id="cust-1",
            click_id=click_id(app, link, first_at - timedelta(hours=1)),
            occurred_at=first_at.isoformat(),
        ),
        headers=admin,
    )
    assert first.json()["attribution"]["method"] == "click"
    inside = await client.post(
        "/v1/conversions",
        json=sale(
            program,
            customer_id="cust-1",
            occurred_at=(first_at + timedelta(days=61) - timedelta(seconds=1)).isoformat(),
        ),
        headers=admin,
    )
    body = inside.json()
    assert body["attribution"]["method"] == "customer"
    assert reasons(body) == {"promo_code": "no promo code sent", "click": "no click id sent"}
    assert body["commissions"][0]["amount"] == "10.00"
    boundary = await client.post(
        "/v1/conversions",
        json=sale(
            program,
            customer_id="cust-1",
            occurred_at=datetime(2026, 8, 15, 12, tzinfo=UTC).isoformat(),
        ),
        headers=admin,
    )
    assert boundary.json()["attribution"]["method"] == "customer"
    assert boundary.json()["commissions"] == []
    stranger = await client.post(
        "/v1/conversions", json=sale(program, customer_id="cust-unknown"), headers=admin
    )
    assert reasons(stranger.json())["customer"] == "customer has no earlier attributed conversion"


async def test_unattributed_is_stored_and_earns_nothing(client, admin):
    program, _ = await setup(client, admin)
    r = await client.post("/v1/conversions", json=sale(program), headers=admin)
    assert r.status_code == 201
    body = r.json()
    assert body["attribution"]["partner_id"] is None and body["commissions"] == []
    got = await client.get(f"/v1/conversions/{body['id']}", headers=admin)
    assert got.json()["id"] == body["id"]


async def test_no_agreement_means_attributed_but_no_commission(client, app, admin):
    program, _ = await setup(client, admin)
    loner = await create_partner(client, admin)
    link = await add_link(app, program["id"], loner["id"])
    r = await client.post(
        "/v1/conversions", json=sale(program, click_id=click_id(app, link)), headers=admin
    )
    assert r.json()["attribution"]["partner_id"] == loner["id"]
    assert r.json()["commissions"] == []


async def test_lead_without_amount_earns_flat(client, app, admin):
    terms = {"rules": [{"event": "lead", "type": "flat", "amount": "3.00"}]}
    program, partner = await setup(client, admin, terms=terms)
    link = await add_link(app, program["id"], partner["id"])
    body = sale(program, type="lead", click_id=click_id(app, link))
    del body["amount"]
    r = await client.post("/v1/conversions", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert [e["amount"] for e in r.json()["commissions"]] == ["3.00"]


async def test_parent_override_entry(client, app, admin):
    terms = {
        "rules": [{"event": "sale", "type": "percent", "percent": "10"}],
        "parent_override_percent": "5",
    }
    parent = await create_partner(client, admin)
    child = await create_partner(client, admin, parent_id=parent["id"])
    program, _ = await setup(client, admin, terms=terms, partner=child)
    link = await add_link(app, program["id"], child["id"])
    r = await client.post(
        "/v1/conversions",
        json=sale(program, amount="250.00", click_id=click_id(app, link)),
        headers=admin,
    )
    by_partner = {e["partner_id"]: (e["kind"], e["amount"]) for e in r.json()["commissions"]}
    assert by_partner == {child["id"]: ("commission", "25.00"), parent["id"]: ("override", "1.25")}


async def test_fast_conversion_is_held_for_review(client, app, admin):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    now = datetime.now(UTC)
    r = await client.post(
        "/v1/conversions",
        json=sale(
            program,
            click_id=click_id(app, link, now - timedelta(seconds=1)),
            occurred_at=now.isoformat(),
        ),
        headers=admin,
    )
    assert r.json()["status"] == "review" and "after the click" in r.json()["review_reason"]


async def test_input_validation_names_fields(client, admin):
    program, _ = await setup(client, admin)
    cases = [
        ({"amount": None}, "amount"),
        ({"amount": "12.345"}, "amount"),
        ({"amount": 12.5}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"currency": "XXQ"}, "currency"),
        ({"type": "purchase"}, "type"),
        ({"order_id": ""}, "order_id"),
        ({"occurred_at": "2026-11-22T10:00:00"}, "occurred_at"),
        ({"occurred_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "occurred_at"),
        ({"items": [{"sku": "a", "amount": "1.001"}]}, "items[0].amount"),
        ({"items": [{"sku": "a", "amount": "1", "quantity": 0}]}, "items[0].quantity"),
        ({"customer_email": "nope"}, "customer_email"),
        ({"program_id": "0190f4d6-0000-7000-8000-000000000000"}, "program_id"),
    ]
    for override, field in cases:
        body = sale(program)
        body.update(override)
        if override.get("amount", "x") is None:
            body.pop("amount")
        r = await client.post("/v1/conversions", json=body, headers=admin)
        assert field in error_fields(r), (override, r.text)


async def test_merchant_key_is_bound_to_its_programs(client, app, admin):
    program, _ = await setup(client, admin)
    other, _ = await setup(client, admin)
    merchant = await make_key(app, "merchant", program_ids=[program["id"]])
    ok = await client.post("/v1/conversions", json=sale(program), headers=merchant)
    assert ok.status_code == 201
    r = await client.post("/v1/conversions", json=sale(other), headers=merchant)
    assert error_fields(r) == ["program_id"]
    assert_problem(
        await client.get(
            f"/v1/conversions/{ok.json()['id']}",
            headers=await make_key(app, "merchant", program_ids=[other["id"]]),
        ),
        404,
    )
    finance = await make_key(app, "finance")
    assert_problem(await client.post("/v1/conversions", json=sale(program), headers=finance), 403)


async def test_partner_sees_only_own_conversions(client, app, admin):
    program, partner = await setup(client, admin)
    _, other = await setup(client, admin, program=program)
    mine = await client.post(
        "/v1/conversions",
        json=sale(
            program, click_id=click_id(app, await add_link(app, program["id"], partner["id"]))
        ),
        headers=admin,
    )
    theirs = await client.post(
        "/v1/conversions",
        json=sale(program, click_id=click_id(app, await add_link(app, program["id"], other["id"]))),
        headers=admin,
    )
    key = await make_key(app, "partner", partner_id=partner["id"])
    assert (
        await client.get(f"/v1/conversions/{mine.json()['id']}", headers=key)
    ).status_code == 200
    assert_problem(await client.get(f"/v1/conversions/{theirs.json()['id']}", headers=key), 404)
    listed = (await client.get("/v1/conversions", headers=key)).json()["items"]
    assert [c["id"] for c in listed] == [mine.json()["id"]]
    commissions = (await client.get("/v1/commissions", headers=key)).json()["items"]
    assert {c["partner_id"] for c in commissions} == {partner["id"]}
    filtered = await client.get("/v1/commissions", params={"partner_id": other["id"]}, headers=key)
    assert filtered.json()["items"] == []


async def test_a_replay_uses_no_promo_code_and_moves_no_month(client, app, admin):
    # The conversion's row is inserted last: a replay finds its order taken only after the
    # promo code was counted and the month locked, and must leave both as they were.
    from sqlalchemy import func, select

    from service.models import AuditEvent, MonthTotal, PromoCode

    program, partner = await setup(client, admin)
    code = await add_promo(app, program["id"], partner["id"], max_uses=2)
    body = sale(program, promo_code=code, amount="40.00")
    first = await client.post("/v1/conversions", json=body, headers=admin)
    assert first.status_code == 201 and first.json()["attribution"]["method"] == "promo_code"

    async def state():
        async with app.state.sessionmaker() as session:
            uses = await session.scalar(select(PromoCode.uses).where(PromoCode.code == code))
            month = await session.scalar(
                select(MonthTotal.state).where(MonthTotal.partner_id == partner["id"])
            )
            trail = await session.scalar(
                select(func.count()).where(AuditEvent.object_id == first.json()["id"])
            )
        return uses, month, trail

    before = await state()
    assert before[0] == 1 and before[2] == 1
    for _ in range(3):
        again = await client.post("/v1/conversions", json=body, headers=admin)
        assert again.status_code == 200 and again.json() == first.json()
    assert await state() == before
    other = await client.post(
        "/v1/conversions", json=sale(program, promo_code=code, amount="40.00"), headers=admin
    )
    assert other.status_code == 201 and other.json()["attribution"]["method"] == "promo_code"
    conflicting = await client.post(
        "/v1/conversions", json={**body, "amount": "41.00"}, headers=admin
    )
    assert conflicting.status_code == 409
    assert (await state())[0] == 2
