"""The conversion path reads programs from a cache: a change reaches it at once on this
instance, and through NOTIFY when another instance (or anything else) makes it."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.conversions.factories import add_link, click_id, sale, setup

NO_HOLD_IN_TERMS = {"rules": [{"event": "sale", "type": "percent", "percent": "10"}]}


async def _hold_days(client, app, admin, program, link) -> int:
    occurred = datetime.now(UTC) - timedelta(minutes=1)
    r = await client.post(
        "/v1/conversions",
        json=sale(program, click_id=click_id(app, link), occurred_at=occurred.isoformat()),
        headers=admin,
    )
    assert r.status_code == 201, r.text
    [entry] = r.json()["commissions"]
    return (datetime.fromisoformat(entry["available_at"]) - occurred).days


async def test_a_change_through_the_api_is_used_by_the_next_conversion(client, app, admin):
    program, partner = await setup(client, admin, terms=NO_HOLD_IN_TERMS, hold_days=30)
    link = await add_link(app, program["id"], partner["id"])
    assert await _hold_days(client, app, admin, program, link) == 30
    assert uuid.UUID(program["id"]) in app.state.program_cache._entries
    for days in (7, 12):
        r = await client.patch(
            f"/v1/programs/{program['id']}", json={"hold_days": days}, headers=admin
        )
        assert r.status_code == 200, r.text
        # No wait: this instance forgets the program when the change commits.
        assert await _hold_days(client, app, admin, program, link) == days


async def test_a_change_made_elsewhere_arrives_by_notify(client, app, admin):
    program, partner = await setup(client, admin, terms=NO_HOLD_IN_TERMS, hold_days=30)
    link = await add_link(app, program["id"], partner["id"])
    assert await _hold_days(client, app, admin, program, link) == 30
    # As another instance would: a plain UPDATE on a connection of its own.
    async with app.state.engine.connect() as conn:
        await conn.execute(
            text("UPDATE programs SET hold_days = 3 WHERE id = :id"), {"id": program["id"]}
        )
        await conn.commit()
    for _ in range(100):
        if uuid.UUID(program["id"]) not in app.state.program_cache._entries:
            break
        await asyncio.sleep(0.02)
    assert await _hold_days(client, app, admin, program, link) == 3


async def test_nothing_is_cached_while_the_listener_is_down(client, app, admin):
    program, partner = await setup(client, admin, terms=NO_HOLD_IN_TERMS, hold_days=30)
    link = await add_link(app, program["id"], partner["id"])
    cache = app.state.program_cache
    cache.on_listening(False)
    try:
        assert await _hold_days(client, app, admin, program, link) == 30
        assert len(cache) == 0
    finally:
        cache.on_listening(True)
