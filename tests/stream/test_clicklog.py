"""The NATS click log in process: the redirect answers once JetStream acknowledged the click,
a loader stores each click once however often it is delivered, a conversion attributes
before its click is loaded, the lag is reported, and an unacknowledged click is a 503
(durable) or counted as lost (async)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from service.app import create_asgi
from service.redirect import clickloader
from service.redirect.batches import CLICK_COLUMNS
from service.redirect.clickloader import ClickLoader
from service.redirect.clicklog import decode, encode
from service.redirect.writer import CLICKS_LOST
from tests.conftest import make_key, settings_for_tests
from tests.conversions.factories import sale, setup
from tests.helpers import assert_problem
from tests.links.factories import click_token, create_link
from tests.stream.natsserver import (
    OwnNats,
    delete_stream,
    need_machine_nats,
    stream_name,
    wait_for,
)

UA = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/121.0"}


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def serving(
    database_url: str, **settings: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    served = create_asgi(settings_for_tests(**settings), database_url=database_url)
    application = served.fastapi
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://aff.test") as c:
            yield application, c


@pytest.fixture
async def stream() -> AsyncIterator[tuple[str, str]]:
    url = need_machine_nats()
    name = stream_name()
    yield url, name
    await delete_stream(url, name)


async def _counts(database_url: str, link_id: str) -> tuple[int, int]:
    conn = await asyncpg.connect(_plain(database_url))
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM clicks WHERE link_id = $1", uuid.UUID(link_id)
        )
        rolled = await conn.fetchval(
            "SELECT coalesce(sum(clicks), 0) FROM click_rollups_hourly WHERE link_id = $1",
            uuid.UUID(link_id),
        )
    finally:
        await conn.close()
    return int(rows), int(rolled)


def test_a_click_record_travels_whole() -> None:
    record = (
        uuid.uuid4(),
        datetime(2026, 12, 1, 10, 30, 15, 123456, tzinfo=UTC),
        uuid.uuid4(),
        uuid.uuid4(),
        uuid.uuid4(),
        "tok.en",
        b"\x01" * 16,
        b"\x02" * 16,
        "Mozilla/5.0",
        "https://ref.example/",
        "DE",
        "s1",
        None,
        None,
        None,
        "s5",
        False,
        True,
        ["gclid", "fbclid"],
    )
    assert decode(encode(record)) == record
    bare = (*record[:6], None, b"\x02" * 16, *([None] * 8), True, False, None)
    assert decode(encode(bare)) == bare
    with pytest.raises(ValueError):
        decode(b"\x93\x01\x02\x03")
    with pytest.raises(ValueError):
        decode(b"not msgpack at all \xc1")


# A stored click read back as the record it was made from (its user agent's text joined).
_selected = ["a.user_agent" if c == "user_agent" else f"c.{c}" for c in CLICK_COLUMNS]


async def test_each_acknowledged_click_is_loaded_once_however_often_delivered(database_url, stream):
    url, name = stream
    async with serving(database_url, click_log=url, click_stream=name) as (app, client):
        admin = await make_key(app, "admin")
        program, partner = await setup(client, admin)
        link = await create_link(client, admin, program, partner)

        answers = await asyncio.gather(
            *(client.get(f"/r/{link['code']}?sub1=n{i}", headers=UA) for i in range(60))
        )
        assert [r.status_code for r in answers] == [302] * 60
        assert app.state.redirect.writer.published == 60

        async def all_loaded() -> bool:
            return await _counts(database_url, link["id"]) == (60, 60)

        assert await wait_for(all_loaded, seconds=15)

        # Every click delivered again (as after a loader died before its acks): stored once.
        conn = await asyncpg.connect(_plain(database_url))
        try:
            rows = await conn.fetch(
                f"SELECT {', '.join(_selected)} FROM clicks c"
                " LEFT JOIN user_agents a ON a.id = c.user_agent_id WHERE c.link_id = $1",
                uuid.UUID(link["id"]),
            )
        finally:
            await conn.close()
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            for row in rows:
                record = tuple(row)
                markers = record[18]
                await js.publish(
                    f"{name.lower()}.{record[4].hex}",
                    encode((*record[:18], list(markers) if markers else None)),
                )

            async def consumed() -> bool:
                info = await js.consumer_info(name, clickloader.CONSUMER)
                return info.num_pending == 0 and info.num_ack_pending == 0

            assert await wait_for(consumed, seconds=15)
        finally:
            await nc.close()
        assert await _counts(database_url, link["id"]) == (60, 60)

        async def caught_up() -> bool:
            r = await client.get(
                "/v1/reports/performance", params={"link_id": link["id"]}, headers=admin
            )
            return r.json()["clicks_lag_seconds"] == 0

        assert await wait_for(caught_up, seconds=5)
        metrics = (await client.get("/metrics")).text
        assert "affiliate_clicks_lag_seconds 0.0" in metrics


async def test_a_conversion_attributes_before_its_click_is_loaded(database_url, stream):
    url, name = stream
    settings = {"click_log": url, "click_stream": name, "click_loader": False}
    async with serving(database_url, **settings) as (app, client):
        admin = await make_key(app, "admin")
        paid = [{"rule": "paid_traffic", "action": "hold"}]
        program, partner = await setup(client, admin, fraud_rules=paid)
        link = await create_link(client, admin, program, partner)
        r = await client.get(f"/r/{link['code']}?gclid=ad1", headers=UA)
        assert r.status_code == 302
        click_id = click_token(r.headers["location"])

        r = await client.post(
            "/v1/conversions", json=sale(program, click_id=click_id), headers=admin
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["attribution"]["method"] == "click"
        assert body["attribution"]["partner_id"] == partner["id"]
        # The click's markers live in its row, not loaded yet: paid_traffic stays silent (a
        # missing fact never fires); fast_conversion needs only the time the id carries.
        assert {hit["rule"] for hit in body["fraud"]} == {"fast_conversion"}
        assert await _counts(database_url, link["id"]) == (0, 0)

        async def lag() -> float | None:
            r = await client.get(
                "/v1/reports/performance", params={"link_id": link["id"]}, headers=admin
            )
            return r.json()["clicks_lag_seconds"]

        async def behind() -> bool:
            value = await lag()
            return value is not None and value > 0

        assert await wait_for(behind, seconds=5)

        loader = ClickLoader(
            app.state.redirect.writer.connection,
            app.state.redirect.pool,
            app.state.settings,
        )
        loader.start()
        try:

            async def loaded() -> bool:
                return await _counts(database_url, link["id"]) == (1, 1)

            assert await wait_for(loaded, seconds=10)

            async def caught_up() -> bool:
                return await lag() == 0

            assert await wait_for(caught_up, seconds=5)
        finally:
            await loader.close()


async def test_no_acknowledgement_is_a_503_when_durable_and_lost_when_async(database_url, tmp_path):
    own = OwnNats(tmp_path / "store")
    own.start()
    try:
        common = {"click_log": own.url, "click_stream": stream_name()}
        async with (
            serving(database_url, **common, click_publish_timeout_ms=300) as (app, client),
            serving(
                database_url, **common, click_durability="async", click_publish_timeout_ms=300
            ) as (async_app, async_client),
        ):
            admin = await make_key(app, "admin")
            program, partner = await setup(client, admin)
            link = await create_link(client, admin, program, partner)
            assert (await client.get(f"/r/{link['code']}", headers=UA)).status_code == 302
            assert (await async_client.get(f"/r/{link['code']}", headers=UA)).status_code == 302

            async def acknowledged() -> bool:
                return bool(async_app.state.redirect.writer.published == 1)

            assert await wait_for(acknowledged, seconds=5)
            own.kill9()
            lost_before = CLICKS_LOST._value.get()
            started = time.monotonic()
            r = await client.get(f"/r/{link['code']}", headers=UA)
            assert time.monotonic() - started < 3
            assert_problem(r, 503)
            assert r.headers["retry-after"] == "1"

            r = await async_client.get(f"/r/{link['code']}", headers=UA)
            assert r.status_code == 302

            async def counted_lost() -> bool:
                return CLICKS_LOST._value.get() >= lost_before + 1

            assert await wait_for(counted_lost, seconds=5)
            ready = await async_client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["clicks"]["lost"] == 1
    finally:
        own.kill9()
