import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from service.app import create_asgi
from service.models import Click, ClickRollupHourly
from service.redirect import writer as writer_module
from tests.conftest import make_key, settings_for_tests
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem
from tests.links.factories import click_rows, click_token, create_link

UA = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/121.0"}


@pytest.fixture
async def link(client, admin):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    return await create_link(client, admin, program, partner)


async def test_every_answered_302_has_its_committed_click(app, client, link):
    signer = app.state.click_signer
    missing_at_answer = []

    async def one(i: int) -> str:
        r = await client.get(f"/r/{link['code']}?sub1=n{i}", headers=UA)
        assert r.status_code == 302
        cid = signer.verify(click_token(r.headers["location"]))
        # Checked the moment the 302 arrives: the row must already be committed.
        if not await click_rows(app, [cid.click_uuid]):
            missing_at_answer.append(i)
        return cid.click_uuid

    ids = await asyncio.gather(*(one(i) for i in range(300)))
    assert missing_at_answer == []
    assert len(set(ids)) == 300
    rows = await click_rows(app, list(ids))
    assert len(rows) == 300
    assert {r.sub1 for r in rows.values()} == {f"n{i}" for i in range(300)}
    async with app.state.sessionmaker() as s:
        total = await s.scalar(
            select(func.sum(ClickRollupHourly.clicks)).where(
                ClickRollupHourly.link_id == rows[ids[0]].link_id
            )
        )
    assert total == 300


async def test_a_click_that_cannot_be_stored_gets_no_302(app, client, link, monkeypatch):
    async def broken(conn, records, **_):
        raise ConnectionError("database went away")

    monkeypatch.setattr(writer_module, "write_batch", broken)
    r = await client.get(f"/r/{link['code']}", headers=UA)
    assert_problem(r, 503)
    assert "location" not in r.headers
    assert r.headers["retry-after"] == "1"
    monkeypatch.undo()
    r = await client.get(f"/r/{link['code']}", headers=UA)
    assert r.status_code == 302


async def _count(app, link_id) -> int:
    async with app.state.sessionmaker() as s:
        return await s.scalar(
            select(func.count()).select_from(Click).where(Click.link_id == link_id)
        )


async def test_async_mode_answers_first_and_shutdown_flushes(database_url, app, link):
    """A long flush interval keeps clicks queued; shutting down must still store every one."""
    fast = create_asgi(
        settings_for_tests(click_durability="async", click_flush_interval_ms=10_000),
        database_url=database_url,
    )
    async with fast.fastapi.router.lifespan_context(fast.fastapi):
        transport = httpx.ASGITransport(app=fast)
        async with httpx.AsyncClient(transport=transport, base_url="http://aff.test") as c:
            responses = await asyncio.gather(
                *(c.get(f"/r/{link['code']}", headers=UA) for _ in range(50))
            )
            writer = fast.fastapi.state.redirect.writer
            assert writer.durable is False
            # The first click may go out at once; the rest wait for the interval, so the
            # 302s were answered before their clicks were committed.
            assert writer.queued >= 49 and writer.committed <= 1
    assert [r.status_code for r in responses] == [302] * 50
    signer = app.state.click_signer
    ids = [signer.verify(click_token(r.headers["location"])).click_uuid for r in responses]
    rows = await click_rows(app, ids)
    assert len(rows) == 50


async def test_async_mode_flushes_on_its_own(database_url, app, link):
    quick = create_asgi(
        settings_for_tests(click_durability="async", click_flush_interval_ms=20),
        database_url=database_url,
    )
    async with quick.fastapi.router.lifespan_context(quick.fastapi):
        transport = httpx.ASGITransport(app=quick)
        async with httpx.AsyncClient(transport=transport, base_url="http://aff.test") as c:
            r = await c.get(f"/r/{link['code']}", headers=UA)
            assert r.status_code == 302
            writer = quick.fastapi.state.redirect.writer
            for _ in range(200):
                if writer.committed:
                    break
                await asyncio.sleep(0.02)
            assert writer.committed == 1


async def test_admin_api_still_served_behind_the_redirect(app, client):
    """Everything outside /r/ goes to FastAPI, lifespan included."""
    key = await make_key(app, "admin")
    r = await client.get("/v1/links", headers=key)
    assert r.status_code == 200
    assert (await client.get("/healthz")).status_code == 200


class _BrokenPool:
    """A pool whose database is down."""

    def acquire(self):
        raise ConnectionError("database went away")


async def test_async_overflow_waits_for_the_commit_instead_of_dropping():
    """Past the queue bound, async mode gives the request a future: 503, never a lost 302."""
    from service.redirect.writer import ClickWriter

    w = ClickWriter(_BrokenPool(), durable=False, flush_interval=0.001, batch_max=10, max_queued=2)
    queued = [w.submit((uuid.uuid4(),)) for _ in range(2)]
    assert queued == [None, None]
    waiting = w.submit((uuid.uuid4(),))
    assert waiting is not None
    w.start()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 5)
    # The clicks nobody waits for stay queued for a retry.
    assert w.queued == 2
    await asyncio.wait_for(w.close(), 30)
    assert w.queued == 0
