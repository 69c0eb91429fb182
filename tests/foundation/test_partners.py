import pytest

from tests.factories import create_partner, unique
from tests.helpers import assert_problem


async def test_create_get_patch(client, admin):
    partner = await create_partner(client, admin, metadata={"tier": "gold"})
    assert partner["status"] == "active" and partner["metadata"] == {"tier": "gold"}
    got = (await client.get(f"/v1/partners/{partner['id']}", headers=admin)).json()
    assert got == partner
    r = await client.patch(
        f"/v1/partners/{partner['id']}", json={"payout_method": "paypal"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["payout_method"] == "paypal"


async def test_email_is_unique_case_insensitively(client, admin):
    email = f"{unique('dup')}@partners.example"
    await create_partner(client, admin, email=email)
    r = await client.post(
        "/v1/partners", json={"name": "Other", "email": email.upper()}, headers=admin
    )
    assert assert_problem(r, 409)["errors"][0]["field"] == "email"
    other = await create_partner(client, admin)
    r = await client.patch(f"/v1/partners/{other['id']}", json={"email": email}, headers=admin)
    assert_problem(r, 409)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "x", "email": "not-an-email"}, "email"),
        ({"name": "", "email": "a@b.example"}, "name"),
        ({"name": "x", "email": "a@b.example", "status": "gone"}, "status"),
        ({"name": "x", "email": "a@b.example", "parent_id": "nope"}, "parent_id"),
        ({"name": "x", "email": "a@b.example", "payout_details": "iban"}, "payout_details"),
    ],
)
async def test_partner_validation(client, admin, body, field):
    r = await client.post("/v1/partners", json=body, headers=admin)
    assert field in [e["field"] for e in assert_problem(r, 422)["errors"]]


async def test_parent_must_exist_and_make_no_cycle(client, admin):
    r = await client.post(
        "/v1/partners",
        json={
            "name": "x",
            "email": f"{unique()}@p.example",
            "parent_id": "0190f4d6-0000-7000-8000-000000000000",
        },
        headers=admin,
    )
    assert assert_problem(r, 422)["errors"][0]["field"] == "parent_id"
    a = await create_partner(client, admin)
    b = await create_partner(client, admin, parent_id=a["id"])
    c = await create_partner(client, admin, parent_id=b["id"])
    for target, parent in ((a, c["id"]), (a, a["id"]), (b, c["id"])):
        r = await client.patch(
            f"/v1/partners/{target['id']}", json={"parent_id": parent}, headers=admin
        )
        assert assert_problem(r, 422)["errors"][0]["field"] == "parent_id"
    ok = await client.patch(f"/v1/partners/{c['id']}", json={"parent_id": a["id"]}, headers=admin)
    assert ok.status_code == 200


async def test_status_transitions(client, admin):
    partner = await create_partner(client, admin, status="pending")
    url = f"/v1/partners/{partner['id']}"
    for status in ("active", "suspended", "active", "terminated"):
        r = await client.patch(url, json={"status": status}, headers=admin)
        assert r.status_code == 200 and r.json()["status"] == status
    for status in ("active", "suspended", "pending"):
        r = await client.patch(url, json={"status": status}, headers=admin)
        assert assert_problem(r, 409)["errors"][0]["field"] == "status"
    same = await client.patch(url, json={"status": "terminated"}, headers=admin)
    assert same.status_code == 200


async def test_active_cannot_go_back_to_pending(client, admin):
    partner = await create_partner(client, admin)
    r = await client.patch(
        f"/v1/partners/{partner['id']}", json={"status": "pending"}, headers=admin
    )
    assert_problem(r, 409)


async def test_concurrent_reparenting_cannot_make_a_cycle(app, client, admin):
    """A under B in one transaction, B under A in another: the second must see the first."""
    import asyncio
    import uuid

    from service.errors import ValidationFailed
    from service.partners.schemas import PartnerUpdate
    from service.partners.service import update_partner

    a = uuid.UUID((await create_partner(client, admin))["id"])
    b = uuid.UUID((await create_partner(client, admin))["id"])
    by = await _admin_principal(app)

    async def b_under_a() -> None:
        async with app.state.sessionmaker() as session:
            await update_partner(session, b, PartnerUpdate(parent_id=a), by)
            await session.commit()

    async with app.state.sessionmaker() as first:
        await update_partner(first, a, PartnerUpdate(parent_id=b), by)
        second = asyncio.create_task(b_under_a())
        # The second update runs while the first is still open; it must wait for it.
        await asyncio.sleep(0.3)
        await first.commit()
    with pytest.raises(ValidationFailed) as info:
        await asyncio.wait_for(second, 10)
    assert info.value.errors == [
        {"field": "parent_id", "message": "this parent would make a cycle"}
    ]
    got = (await client.get(f"/v1/partners/{b}", headers=admin)).json()
    assert got["parent_id"] is None


async def _admin_principal(app):
    from service.auth.keys import Principal, create_key
    from service.models import Role

    async with app.state.sessionmaker() as session:
        row, _ = await create_key(session, Role.admin)
        await session.commit()
    return Principal(key_id=row.id, role=Role.admin, program_ids=frozenset(), partner_id=None)
