"""Two app instances on one database: a change made through one is seen by the other's
redirect through NOTIFY, not through any expiry (the cache has none)."""

import asyncpg
import httpx
import pytest

from service.app import create_asgi
from tests.conftest import settings_for_tests
from tests.factories import create_partner, create_program, unique
from tests.links.factories import click_rows, click_token, create_link, wait_until

UA = {"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"}


@pytest.fixture(scope="module")
async def other(database_url):
    """A second instance (its own cache, listener and writer) on the same database."""
    instance = create_asgi(settings_for_tests(), database_url=database_url)
    async with instance.fastapi.router.lifespan_context(instance.fastapi):
        transport = httpx.ASGITransport(app=instance)
        async with httpx.AsyncClient(transport=transport, base_url="http://b.test") as c:
            c.instance = instance  # type: ignore[attr-defined]
            yield c


def _cache(client):
    return client.instance.fastapi.state.redirect.cache


async def _warm(client, code):
    """Redirect through the instance until it has the code cached.

    A load that overlaps any notification (the link's own insert, say) is served but not
    kept, so the first redirect may not cache it.
    """

    async def cached() -> bool:
        await client.get(f"/r/{code}", headers=UA)
        return code in _cache(client)

    assert await wait_until(cached)


async def _sql(database_url, query, *args):
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.execute(query, *args)
    finally:
        await conn.close()


@pytest.fixture
async def setup(client, admin):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    link = await create_link(
        client, admin, program, partner, destination_url="https://shop.example/one"
    )
    return program, partner, link


async def test_patch_on_one_instance_reaches_the_other(client, admin, other, setup):
    _, _, link = setup
    path = f"/r/{link['code']}"
    r = await other.get(path, headers=UA)
    assert r.headers["location"].startswith("https://shop.example/one?")
    await _warm(other, link["code"])
    assert _cache(other).enabled

    r = await client.patch(
        f"/v1/links/{link['id']}",
        json={"destination_url": "https://shop.example/two"},
        headers=admin,
    )
    assert r.status_code == 200

    async def moved() -> bool:
        r = await other.get(path, headers=UA)
        return r.headers["location"].startswith("https://shop.example/two?")

    assert await wait_until(moved)

    await client.patch(f"/v1/links/{link['id']}", json={"status": "paused"}, headers=admin)

    async def paused() -> bool:
        r = await other.get(path, headers=UA)
        return r.headers["location"] == "https://shop.example/fallback"

    assert await wait_until(paused)


async def test_unknown_code_created_later_is_found(client, admin, other, setup):
    program, partner, _ = setup
    code = unique("later-")
    r = await other.get(f"/r/{code}", headers=UA)
    assert r.status_code == 404
    await _warm(other, code)  # the miss is cached
    assert (await other.get(f"/r/{code}", headers=UA)).status_code == 404

    await create_link(client, admin, program, partner, code=code)

    async def found() -> bool:
        return (await other.get(f"/r/{code}", headers=UA)).status_code == 302

    assert await wait_until(found)


async def test_write_from_psql_invalidates(database_url, other, setup):
    _, _, link = setup
    path = f"/r/{link['code']}"
    assert (
        (await other.get(path, headers=UA))
        .headers["location"]
        .startswith("https://shop.example/one?")
    )
    await _sql(database_url, "UPDATE links SET status = 'paused' WHERE code = $1", link["code"])

    async def paused() -> bool:
        r = await other.get(path, headers=UA)
        return r.headers["location"] == "https://shop.example/fallback"

    assert await wait_until(paused)


async def test_program_and_partner_changes_invalidate(client, admin, other, setup):
    program, partner, link = setup
    path = f"/r/{link['code']}"
    r = await other.get(path, headers=UA)
    assert "aff_click_id=" in r.headers["location"]

    await client.patch(f"/v1/programs/{program['id']}", json={"click_param": "via"}, headers=admin)

    async def renamed() -> bool:
        r = await other.get(path, headers=UA)
        return r.headers["location"].startswith("https://shop.example/one?via=c2")

    assert await wait_until(renamed)

    await client.patch(f"/v1/partners/{partner['id']}", json={"status": "suspended"}, headers=admin)
    app_b = other.instance.fastapi

    async def unattributable() -> bool:
        r = await other.get(path, headers=UA)
        token = click_token(r.headers["location"], "via")
        cid = app_b.state.click_signer.verify(token)
        rows = await click_rows(app_b, [cid.click_uuid])
        return rows[cid.click_uuid].attributable is False

    assert await wait_until(unattributable)


async def test_listener_reconnects_and_clears_cache(client, admin, database_url, other, setup):
    _, _, link = setup
    path = f"/r/{link['code']}"
    await _warm(other, link["code"])
    cache = _cache(other)
    listener = other.instance.fastapi.state.redirect.listener
    before = listener.reconnects
    pid = listener.connection.get_server_pid()
    await _sql(database_url, "SELECT pg_terminate_backend($1)", pid)

    async def reconnected() -> bool:
        return listener.reconnects > before and listener.connected.is_set()

    assert await wait_until(reconnected, attempts=200)
    assert link["code"] not in cache, "whatever was cached before the drop is forgotten"

    # And invalidation works again on the new connection.
    await _warm(other, link["code"])
    await client.patch(
        f"/v1/links/{link['id']}",
        json={"destination_url": "https://shop.example/three"},
        headers=admin,
    )

    async def moved() -> bool:
        r = await other.get(path, headers=UA)
        return r.headers["location"].startswith("https://shop.example/three?")

    assert await wait_until(moved)
