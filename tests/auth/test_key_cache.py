"""The API-key cache: cleared after the commit that ends a key, on every instance by NOTIFY."""

import asyncio
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from service.app import create_asgi
from service.auth import keys
from tests.conftest import make_key, settings_for_tests
from tests.factories import create_partner

# Well within the cache's own 5 s: a notification, not an expiry, must have done it.
NOTIFY_SECONDS = 2.0


async def _key_id(app, headers) -> uuid.UUID:
    from sqlalchemy import select

    from service.models import ApiKey

    prefix = keys.split_prefix(headers["Authorization"].removeprefix("Bearer "))
    async with app.state.sessionmaker() as session:
        return (await session.scalars(select(ApiKey.id).where(ApiKey.prefix == prefix))).one()


async def _fails_within(client, headers, seconds: float) -> float:
    """Seconds until the key is refused (401), polling; fails past `seconds`."""
    start = time.monotonic()
    while True:
        r = await client.get("/v1/links?limit=1", headers=headers)
        if r.status_code == 401:
            return time.monotonic() - start
        assert r.status_code == 200, r.text
        assert time.monotonic() - start < seconds, "the key still works"
        await asyncio.sleep(0.02)


async def test_a_request_during_the_revoking_transaction_does_not_keep_the_key(app, client):
    headers = await make_key(app, "admin")
    key_id = await _key_id(app, headers)
    async with app.state.sessionmaker() as session:
        await keys.revoke_key(session, key_id)
        await session.flush()
        # Not committed yet: the key still works, and this request caches it as working.
        assert (await client.get("/v1/links?limit=1", headers=headers)).status_code == 200
        await session.commit()
    r = await client.get("/v1/links?limit=1", headers=headers)
    assert r.status_code == 401, "a revoked key was served from the cache"


async def test_revoke_through_the_api_fails_the_key_at_once(app, client, admin):
    headers = await make_key(app, "admin")
    assert (await client.get("/v1/links?limit=1", headers=headers)).status_code == 200
    key_id = await _key_id(app, headers)
    r = await client.post(f"/v1/api-keys/{key_id}/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert (await client.get("/v1/links?limit=1", headers=headers)).status_code == 401


def test_notifications_for_links_leave_keys_cached():
    cache = keys.KeyCache()
    partner, key_id = uuid.uuid4(), uuid.uuid4()
    cache.put(b"d", 0.0, None, key_id=key_id, partner_id=partner, generation=cache.generation)
    for payload in ("link:abc", f"program:{uuid.uuid4()}", f"partner:{uuid.uuid4()}"):
        cache.on_notify(payload)
    assert cache.get(b"d", 1.0) is not None
    cache.on_notify(f"partner:{partner}")
    assert cache.get(b"d", 1.0) is None
    cache.put(b"d", 0.0, None, key_id=key_id, partner_id=None, generation=cache.generation)
    cache.on_notify(f"api_key:{key_id}")
    assert cache.get(b"d", 1.0) is None


def test_a_lookup_overlapping_a_forget_is_not_kept():
    cache = keys.KeyCache()
    key_id = uuid.uuid4()
    before = cache.generation  # the lookup reads the database now...
    cache.on_notify(f"api_key:{key_id}")  # ...the revocation commits meanwhile
    cache.put(b"d", 0.0, None, key_id=key_id, partner_id=None, generation=before)
    assert cache.get(b"d", 1.0) is None


# --- two instances on one database ----------------------------------------------------------

needs_server = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"),
    reason="two instances and the CLI need the machine's PostgreSQL (TEST_DATABASE_URL)",
)


@pytest.fixture(scope="module")
async def other(database_url):
    """A second instance (its own key cache and listener) on the same database."""
    instance = create_asgi(settings_for_tests(), database_url=database_url)
    async with instance.fastapi.router.lifespan_context(instance.fastapi):
        assert await instance.fastapi.state.redirect.listener.wait_connected(5)
        transport = httpx.ASGITransport(app=instance)
        async with httpx.AsyncClient(transport=transport, base_url="http://b.test") as c:
            yield c


@needs_server
@pytest.mark.parametrize("status", ["suspended", "terminated"])
async def test_partner_status_change_fails_its_key_on_the_other_instance(
    app, client, admin, other, status
):
    partner = await create_partner(client, admin)
    key = await make_key(app, "partner", partner_id=partner["id"])
    assert (await other.get("/v1/links?limit=1", headers=key)).status_code == 200  # cached there

    r = await client.patch(f"/v1/partners/{partner['id']}", json={"status": status}, headers=admin)
    assert r.status_code == 200
    took = await _fails_within(other, key, NOTIFY_SECONDS)
    assert took < NOTIFY_SECONDS


@needs_server
async def test_api_revocation_reaches_the_other_instance(app, client, admin, other):
    headers = await make_key(app, "admin")
    assert (await other.get("/v1/links?limit=1", headers=headers)).status_code == 200
    key_id = await _key_id(app, headers)
    assert (await client.post(f"/v1/api-keys/{key_id}/revoke", headers=admin)).status_code == 200
    await _fails_within(other, headers, NOTIFY_SECONDS)


@needs_server
async def test_cli_revocation_reaches_every_instance(app, client, other, database_url):
    headers = await make_key(app, "admin")
    for instance in (client, other):
        assert (await instance.get("/v1/links?limit=1", headers=headers)).status_code == 200
    key_id = await _key_id(app, headers)
    env = {
        **os.environ,
        "DATABASE_URL": database_url.replace("postgresql+asyncpg://", "postgresql://"),
        "AFFILIATE_MIGRATE": "0",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service", "keys", "revoke", str(key_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for instance in (client, other):
        await _fails_within(instance, headers, NOTIFY_SECONDS)
