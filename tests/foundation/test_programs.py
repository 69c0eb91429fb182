import pytest

from tests.factories import create_program
from tests.helpers import assert_problem

BASE = {"name": "Shop", "currency": "USD", "default_url": "https://shop.example/"}


async def test_create_get_patch_roundtrip(client, admin):
    program = await create_program(client, admin, currency="KWD", min_payout="10.125")
    assert program["min_payout"] == "10.125"
    assert program["click_param"] == "aff_click_id"
    assert program["attribution_order"] == ["promo_code", "click", "customer"]
    got = (await client.get(f"/v1/programs/{program['id']}", headers=admin)).json()
    assert got == program
    r = await client.patch(
        f"/v1/programs/{program['id']}",
        json={"time_zone": "Europe/Paris", "hold_days": 0, "attribution_order": ["click"]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["time_zone"] == "Europe/Paris" and r.json()["hold_days"] == 0
    assert r.json()["attribution_order"] == ["click"]


async def test_allowed_domains_default_to_the_default_url_host(client, admin):
    r = await client.post("/v1/programs", json=BASE, headers=admin)
    assert r.status_code == 201
    assert r.json()["allowed_domains"] == ["shop.example"]


async def test_jpy_min_payout_has_no_decimals(client, admin):
    ok = await create_program(client, admin, currency="JPY", min_payout="5000")
    assert ok["min_payout"] == "5000"
    r = await client.post(
        "/v1/programs", json={**BASE, "currency": "JPY", "min_payout": "5000.5"}, headers=admin
    )
    assert assert_problem(r, 422)["errors"][0]["field"] == "min_payout"


@pytest.mark.parametrize(
    "override,field",
    [
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "usd"}, "currency"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"default_url": "ftp://shop.example/"}, "default_url"),
        ({"default_url": "/relative"}, "default_url"),
        ({"default_url": "https://user:pw@shop.example/"}, "default_url"),
        ({"fallback_url": "javascript:alert(1)"}, "fallback_url"),
        ({"allowed_domains": ["Shop.Example"]}, "allowed_domains[0]"),
        ({"allowed_domains": ["shop.example", "bad domain"]}, "allowed_domains[1]"),
        ({"allowed_domains": ["other.example"]}, "default_url"),
        ({"min_payout": "-1"}, "min_payout"),
        ({"min_payout": "10.001"}, "min_payout"),
        ({"min_payout": "ten"}, "min_payout"),
        ({"click_param": "has space"}, "click_param"),
        ({"attribution_window_days": 0}, "attribution_window_days"),
        ({"attribution_order": ["click", "click"]}, "attribution_order"),
        ({"attribution_order": ["cookie"]}, "attribution_order[0]"),
        ({"hold_days": -1}, "hold_days"),
    ],
)
async def test_program_validation_names_the_field(client, admin, override, field):
    r = await client.post("/v1/programs", json={**BASE, **override}, headers=admin)
    body = assert_problem(r, 422)
    assert field in [e["field"] for e in body["errors"]], body


async def test_patch_validation_and_nulls(client, admin):
    program = await create_program(client, admin)
    for body, field in (
        ({"name": None}, "name"),
        ({"min_payout": "1.234"}, "min_payout"),
        ({"allowed_domains": ["elsewhere.example"]}, "default_url"),
        ({"currency": "EUR"}, "currency"),
    ):
        r = await client.patch(f"/v1/programs/{program['id']}", json=body, headers=admin)
        assert field in [e["field"] for e in assert_problem(r, 422)["errors"]]
    unchanged = (await client.get(f"/v1/programs/{program['id']}", headers=admin)).json()
    assert unchanged == program


async def test_program_changes_are_audited(client, app, admin):
    from sqlalchemy import select

    from service.models import AuditEvent

    program = await create_program(client, admin)
    await client.patch(f"/v1/programs/{program['id']}", json={"hold_days": 7}, headers=admin)
    async with app.state.sessionmaker() as session:
        events = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.object_id == program["id"])
                .order_by(AuditEvent.created_at)
            )
        ).all()
    assert [e.action for e in events] == ["program.created", "program.updated"]
    assert events[1].data == {"hold_days": {"from": 30, "to": 7}}
    assert events[1].actor_role == "admin"
