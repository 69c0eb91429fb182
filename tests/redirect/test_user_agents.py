"""A click's user agent is stored once per distinct value (user_agents), and read back whole."""

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from service.redirect.batches import KnownAgents, user_agent_id, write_batch
from tests.factories import create_partner, create_program
from tests.links.factories import click_rows, click_token, create_link
from tests.redirect.records import click_record

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1 \u00e9"
)


@pytest.fixture
async def conn(database_url):
    c = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    yield c
    await c.close()


@pytest.fixture
async def link(client, admin):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    return await create_link(client, admin, program, partner)


def _record(link, user_agent, *, at=None, click_id=None):
    at = at or datetime(2026, 3, 5, 10, tzinfo=UTC)
    return click_record(
        link, at=at, visitor=uuid.uuid4().bytes, user_agent=user_agent, click_id=click_id
    )


async def _agents(conn, *texts):
    return await conn.fetchval(
        "SELECT count(*) FROM user_agents WHERE user_agent = ANY($1::text[])", list(texts)
    )


async def _stored(conn, link):
    rows = await conn.fetch(
        "SELECT c.id, a.user_agent FROM clicks c LEFT JOIN user_agents a ON a.id = c.user_agent_id"
        " WHERE c.link_id = $1",
        uuid.UUID(link["id"]),
    )
    return {r["id"]: r["user_agent"] for r in rows}


async def test_clicks_share_one_row_per_user_agent(conn, link):
    batch = [_record(link, FIREFOX) for _ in range(3)] + [
        _record(link, SAFARI),
        _record(link, None),
    ]
    await write_batch(conn, batch[:2], maybe_stored=False, own_transaction=True)
    await write_batch(conn, batch[2:])
    assert await _agents(conn, FIREFOX) == 1
    assert await _agents(conn, SAFARI) == 1
    assert await _stored(conn, link) == {rec[0]: rec[8] for rec in batch}
    ids = await conn.fetch(
        "SELECT DISTINCT user_agent_id FROM clicks WHERE link_id = $1 AND user_agent_id IS NOT NULL",
        uuid.UUID(link["id"]),
    )
    assert {r[0] for r in ids} == {user_agent_id(FIREFOX), user_agent_id(SAFARI)}
    columns = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'clicks'"
    )
    assert "user_agent" not in {r[0] for r in columns}, "the text is in user_agents only"


async def test_agents_known_only_after_their_commit(conn, link):
    known = KnownAgents()
    agent = f"{SAFARI} {uuid.uuid4()}"  # no other test of this module's database has it
    # A batch the database refuses (a NUL in a referer) commits nothing, the user agent it
    # inserted neither.
    refused = list(_record(link, agent))
    refused[9] = "https://blog.example/\x00"
    with pytest.raises(asyncpg.DataError):
        await write_batch(conn, [_record(link, agent), tuple(refused)], known_agents=known)
    assert user_agent_id(agent) not in known
    assert await _agents(conn, agent) == 0
    first = _record(link, agent)
    assert await write_batch(conn, [first], maybe_stored=False, known_agents=known) == 1
    assert user_agent_id(agent) in known
    # Known now: the next batch skips its insert, and its click still reads it back.
    second = _record(link, agent)
    assert await write_batch(conn, [second], maybe_stored=False, known_agents=known) == 1
    assert await _stored(conn, link) == {first[0]: agent, second[0]: agent}


async def test_a_retried_batch_stores_its_agents_and_counts_once(conn, link):
    known = KnownAgents()
    batch = [_record(link, FIREFOX), _record(link, SAFARI)]
    assert await write_batch(conn, batch, maybe_stored=False, known_agents=known) == 2
    # The retry of a batch whose commit went unseen, with a process that forgot its agents.
    assert await write_batch(conn, batch, known_agents=KnownAgents()) == 0
    assert await write_batch(conn, [*batch, _record(link, FIREFOX)]) == 1
    assert await _agents(conn, FIREFOX, SAFARI) == 2
    clicks = await conn.fetchval(
        "SELECT sum(clicks) FROM click_rollups_hourly WHERE link_id = $1", uuid.UUID(link["id"])
    )
    assert clicks == 3


async def test_known_agents_are_bounded():
    known = KnownAgents(limit=2)
    a, b, c = (uuid.uuid4() for _ in range(3))
    known.add([a, b])
    known.add([c])
    assert c in known and a not in known and b not in known


async def test_the_redirect_stores_the_user_agent_once(app, client, admin, link, conn):
    tokens = []
    for _ in range(3):
        r = await client.get(f"/r/{link['code']}", headers={"user-agent": SAFARI.encode()})
        assert r.status_code == 302
        tokens.append(click_token(r.headers["location"]))
    ids = [app.state.click_signer.verify(t).click_uuid for t in tokens]
    rows = await click_rows(app, ids)
    assert [rows[i].user_agent for i in ids] == [SAFARI] * 3
    assert len({rows[i].user_agent_id for i in ids}) == 1
    assert await _agents(conn, SAFARI) == 1
