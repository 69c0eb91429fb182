"""Visitor address hashes are keyed per UTC day; a day's key is deleted after
AFFILIATE_HASH_KEY_DAYS, so a dump cannot reverse the hashes of the days before."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from service.app import create_asgi
from service.db import create_engine
from service.kit.time import utc_now
from service.visitor_keys import VisitorKeys, derive
from tests.conftest import make_key, settings_for_tests
from tests.factories import create_partner, create_program, unique
from tests.links.factories import click_rows, click_token, create_link

UA = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
PEER = "127.0.0.1"
MASTER = "m" * 40


@pytest.fixture
def fresh_url(fresh_database_url):
    """A database of the test's own: these tests delete keys other tests would use."""
    return fresh_database_url


async def _dump_keys(url: str) -> list[bytes]:
    """Every secret a dump of the database holds."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch("SELECT value FROM service_secrets")
        days = await conn.fetch("SELECT key FROM hash_keys")
    finally:
        await conn.close()
    return [bytes(r[0]) for r in rows] + [bytes(r[0]) for r in days]


async def _click_hashes(served) -> tuple[bytes, bytes]:
    app = served.fastapi
    transport = httpx.ASGITransport(app=served, client=(PEER, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://aff.test") as c:
        admin = await make_key(app, "admin")
        program = await create_program(c, admin)
        partner = await create_partner(c, admin)
        link = await create_link(c, admin, program, partner, code=unique("vk-"))
        r = await c.get(f"/r/{link['code']}", headers=UA)
    assert r.status_code == 302, r.text
    cid = app.state.click_signer.verify(click_token(r.headers["location"]))
    row = (await click_rows(app, [cid.click_uuid]))[cid.click_uuid]
    return row.ip_hash, row.visitor_hash


def _reverses(key: bytes, ip_hash: bytes) -> bool:
    return hmac.digest(key, b"ip\x00" + PEER.encode(), "sha256")[:16] == ip_hash


async def test_a_dump_cannot_reverse_an_address_hash_once_its_day_is_over(fresh_url):
    served = create_asgi(settings_for_tests(), database_url=fresh_url)
    app = served.fastapi
    async with app.router.lifespan_context(app):
        ip_hash, _ = await _click_hashes(served)
        keys = app.state.secrets.visitor_keys
        # Today's key is in the database while today's clicks are counted...
        assert any(_reverses(k, ip_hash) for k in await _dump_keys(fresh_url))
        # ...and gone once the day is past the kept days (2: today and yesterday).
        await keys.upkeep(utc_now() + timedelta(days=1))
        assert any(_reverses(k, ip_hash) for k in await _dump_keys(fresh_url))
        await keys.upkeep(utc_now() + timedelta(days=2))
    assert not any(_reverses(k, ip_hash) for k in await _dump_keys(fresh_url))


async def test_instances_agree_on_the_day_and_days_differ(fresh_url):
    engine = create_engine(fresh_url, settings_for_tests())
    try:
        a = VisitorKeys(engine, keep_days=2, master=None)
        b = VisitorKeys(engine, keep_days=2, master=None)
        day = datetime(2031, 5, 6, tzinfo=UTC).date()
        first, second = await asyncio.gather(a.key_for(day), b.key_for(day))
        assert first == second and len(first) == 32
        assert await a.key_for(day + timedelta(days=1)) != first
        # Upkeep makes tomorrow's key ahead, so midnight rolls over in memory.
        await a.upkeep(datetime(2031, 5, 6, 23, 59, tzinfo=UTC))
        assert a.cached(day + timedelta(days=1)) is not None
        assert a.cached(day - timedelta(days=1)) is None
        await a.upkeep(datetime(2031, 5, 8, 0, 0, 1, tzinfo=UTC))
        assert a.cached(day) is None
    finally:
        await engine.dispose()


async def test_the_redirect_does_not_query_for_the_key_per_click(fresh_url):
    served = create_asgi(settings_for_tests(), database_url=fresh_url)
    app = served.fastapi
    async with app.router.lifespan_context(app):
        keys = app.state.secrets.visitor_keys

        async def no_query(day):
            raise AssertionError("queried for the day's key")

        keys._load = no_query
        first, _ = await _click_hashes(served)
        second, _ = await _click_hashes(served)
    assert first == second


async def test_a_key_held_outside_the_database(fresh_url):
    served = create_asgi(settings_for_tests(hash_key=MASTER), database_url=fresh_url)
    app = served.fastapi
    async with app.router.lifespan_context(app):
        ip_hash, _ = await _click_hashes(served)
        secrets = app.state.secrets
    day = utc_now().date()
    assert _reverses(derive(MASTER.encode(), f"visitor:{day.isoformat()}"), ip_hash)
    assert secrets.email_key == derive(MASTER.encode(), "email")
    # Neither the day's key nor the email key is in the database.
    dump = await _dump_keys(fresh_url)
    assert not any(_reverses(k, ip_hash) for k in dump)
    assert secrets.email_key not in dump
    assert hashlib.sha256(MASTER.encode()).digest() not in dump
