"""Migration 0801: clicks' user agents move into user_agents, and back on downgrade; the
index of clicks by link and the foreign key of visitor-days go, and come back."""

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from service import migrate
from service.redirect.batches import user_agent_id

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
ODD = "Bot \u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9 \U0001f600 'quoted'"


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))


async def _indexes(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'clicks'")
    return {r[0] for r in rows}


async def _visitor_day_fks(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'click_visitors_daily'::regclass"
        " AND contype = 'f'"
    )
    return [r[0] for r in rows]


async def test_user_agents_move_out_and_back(pg_server):
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url, "0701")
    # Clicks of two months (a partition each, and the default one), three sharing a value.
    seeded = {
        uuid.uuid4(): (datetime(2026, 3, 5, 10, tzinfo=UTC), CHROME),
        uuid.uuid4(): (datetime(2026, 3, 5, 11, tzinfo=UTC), CHROME),
        uuid.uuid4(): (datetime(2026, 4, 1, 0, tzinfo=UTC), CHROME),
        uuid.uuid4(): (datetime(2026, 4, 2, 0, tzinfo=UTC), ODD),
        uuid.uuid4(): (datetime(2031, 1, 1, 0, tzinfo=UTC), None),
    }
    conn = await _connect(url)
    try:
        for month in ("2026_03", "2026_04"):
            y, m = (int(p) for p in month.split("_"))
            await conn.execute(
                f"CREATE TABLE clicks_{month} PARTITION OF clicks FOR VALUES FROM"
                f" ('{y}-{m:02d}-01 00:00+00') TO ('{y}-{m + 1:02d}-01 00:00+00')"
            )
        link = uuid.uuid4()
        for cid, (at, agent) in seeded.items():
            await conn.execute(
                "INSERT INTO clicks (id, clicked_at, link_id, partner_id, program_id, click_token,"
                " user_agent, is_bot, attributable) VALUES ($1, $2, $3, $3, $3, 'c2x', $4,"
                " false, true)",
                cid,
                at,
                link,
                agent,
            )
        assert "ix_clicks_link_id_clicked_at" in await _indexes(conn)
    finally:
        await conn.close()

    await asyncio.to_thread(migrate.upgrade, url, "0801")
    conn = await _connect(url)
    try:
        agents = {r[0]: r[1] for r in await conn.fetch("SELECT id, user_agent FROM user_agents")}
        # The keys the migration computed are the ones the writer computes.
        assert agents == {user_agent_id(CHROME): CHROME, user_agent_id(ODD): ODD}
        rows = await conn.fetch("SELECT id, user_agent_id FROM clicks")
        assert {r[0]: r[1] for r in rows} == {
            cid: agent and user_agent_id(agent) for cid, (_, agent) in seeded.items()
        }
        indexes = await _indexes(conn)
        assert not any("link_id" in name for name in indexes), indexes
        # Every partition lost it too, and a partition made later never had it.
        partition_indexes = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'clicks_%'"
            " AND indexdef LIKE '%link_id%'"
        )
        assert partition_indexes == []
        assert await _visitor_day_fks(conn) == []
    finally:
        await conn.close()

    await asyncio.to_thread(migrate.downgrade, url, "0701")
    conn = await _connect(url)
    try:
        rows = await conn.fetch("SELECT id, user_agent FROM clicks")
        assert {r[0]: r[1] for r in rows} == {cid: agent for cid, (_, agent) in seeded.items()}
        assert "ix_clicks_link_id_clicked_at" in await _indexes(conn)
        assert await conn.fetchval("SELECT to_regclass('user_agents')") is None
        assert await _visitor_day_fks(conn) == ["fk_click_visitors_daily_link_id_links"]
    finally:
        await conn.close()
