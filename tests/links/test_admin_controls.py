"""Admin controls hold: a partner cannot lift an admin's pause, and a partner that is not
active cannot change anything; a suspended or terminated partner's keys stop working."""

import pytest

from tests.conftest import make_key
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem
from tests.links.factories import create_link, join_program


@pytest.fixture
async def setup(app, client, admin):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    await join_program(app, partner["id"], program["id"])
    key = await make_key(app, "partner", partner_id=partner["id"])
    link = await create_link(client, key, program, None)
    return program, partner, key, link


async def _status(client, headers, link, status):
    return await client.patch(f"/v1/links/{link['id']}", json={"status": status}, headers=headers)


async def test_partner_cannot_lift_an_admins_pause(client, admin, setup):
    _, _, key, link = setup
    paused = await _status(client, admin, link, "paused")
    assert paused.status_code == 200

    r = await _status(client, key, link, "active")
    body = assert_problem(r, 403)
    assert [e["field"] for e in body["errors"]] == ["status"]
    got = await client.get(f"/v1/links/{link['id']}", headers=key)
    assert got.json()["status"] == "paused"
    assert paused.json()["paused_by"] == got.json()["paused_by"] == "admin"
    # Other edits stay the partner's to make; only the pause holds.
    r = await client.patch(
        f"/v1/links/{link['id']}", json={"destination_url": "https://shop.example/b"}, headers=key
    )
    assert r.status_code == 200 and r.json()["status"] == "paused"

    r = await _status(client, admin, link, "active")
    assert r.status_code == 200 and r.json()["paused_by"] is None


async def test_partner_lifts_its_own_pause(client, setup):
    _, _, key, link = setup
    r = await _status(client, key, link, "paused")
    assert r.status_code == 200 and r.json()["paused_by"] == "partner"
    r = await _status(client, key, link, "active")
    assert r.status_code == 200 and r.json()["status"] == "active"


async def test_link_created_paused_by_an_admin_holds(client, admin, setup):
    program, partner, key, _ = setup
    link = await create_link(client, admin, program, partner, status="paused")
    assert_problem(await _status(client, key, link, "active"), 403)
    assert link["paused_by"] == "admin"


async def test_pause_from_psql_is_not_the_partners_to_lift(app, client, setup):
    from sqlalchemy import text

    _, _, key, link = setup
    async with app.state.sessionmaker() as session:
        await session.execute(
            text("UPDATE links SET status = 'paused' WHERE id = :id"), {"id": link["id"]}
        )
        await session.commit()
    assert_problem(await _status(client, key, link, "active"), 403)


async def test_pending_partner_reads_but_cannot_write(app, client, admin):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin, status="pending")
    await join_program(app, partner["id"], program["id"])
    key = await make_key(app, "partner", partner_id=partner["id"])
    link = await create_link(client, admin, program, partner)

    assert (await client.get("/v1/links", headers=key)).status_code == 200
    r = await client.post("/v1/links", json={"program_id": program["id"]}, headers=key)
    assert "pending" in assert_problem(r, 403)["detail"]
    assert_problem(await _status(client, key, link, "paused"), 403)
    r = await client.patch(
        f"/v1/links/{link['id']}", json={"destination_url": "https://shop.example/x"}, headers=key
    )
    assert_problem(r, 403)


@pytest.mark.parametrize("status", ["suspended", "terminated"])
async def test_locked_out_partner_keys_stop_working_at_once(client, admin, setup, status):
    _, partner, key, link = setup
    # Cached on this instance by the request before the change.
    assert (await client.get(f"/v1/links/{link['id']}", headers=key)).status_code == 200
    r = await client.patch(f"/v1/partners/{partner['id']}", json={"status": status}, headers=admin)
    assert r.status_code == 200

    assert_problem(await client.get(f"/v1/links/{link['id']}", headers=key), 401)
    assert_problem(await _status(client, key, link, "paused"), 401)
    if status == "suspended":
        r = await client.patch(
            f"/v1/partners/{partner['id']}", json={"status": "active"}, headers=admin
        )
        assert r.status_code == 200
        assert (await client.get(f"/v1/links/{link['id']}", headers=key)).status_code == 200
