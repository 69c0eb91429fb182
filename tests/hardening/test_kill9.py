"""kill -9 under redirect load: durable mode keeps every click it acknowledged; async mode
loses at most what it acknowledged within the lag bound before the kill.

What "counted" can mean after a kill -9: the process and its counters die together, so no
metric can report the clicks lost by the kill itself. What the service offers instead is a
bound (an async 302 goes out only while the oldest uncommitted click is younger than
AFFILIATE_CLICK_MAX_LAG_MS) and, while it lives, the exposure: the
affiliate_clicks_unconfirmed gauge, which every scrape reports. Losses the live process
sees (a batch refused, a shutdown with the database gone) are counted in
affiliate_clicks_lost_total as they happen; tests/hardening/test_click_writer.py has those.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
import pytest

from tests.hardening.served import (
    Server,
    Tally,
    click_load,
    make_link,
    need_machine_postgres,
    plain,
    stored_tokens,
)

WORKERS = 8
PER_WORKER = 400


@pytest.fixture
async def fresh_database(pg_server):
    need_machine_postgres()
    return await pg_server.new_database()


async def _load_then_kill(server: Server, code: str, kill_after: float) -> tuple[Tally, float]:
    tally = Tally()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        # A first click warms the process up, so the load runs at its pace from the start.
        assert (await client.get(f"/r/{code}")).status_code == 302
        workers = [
            asyncio.create_task(click_load(client, code, tally, stop, PER_WORKER))
            for _ in range(WORKERS)
        ]
        await asyncio.sleep(kill_after)
        killed_at = time.monotonic()
        await asyncio.to_thread(server.kill9)
        stop.set()
        await asyncio.gather(*workers)
    return tally, killed_at


async def test_durable_mode_loses_no_acknowledged_click_to_kill_9(fresh_database, tmp_path):
    server = Server(fresh_database, tmp_path / "server.log", AFFILIATE_CLICK_DURABILITY="durable")
    server.start()
    try:
        admin = server.keys("admin")
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            link = await make_link(client, admin)
        acknowledged: dict[str, float] = {}
        for trial in range(2):
            tally, _ = await _load_then_kill(server, link["code"], 1.0 + 0.5 * trial)
            assert len(tally.clicks) > 20, tally
            assert tally.server_errors == 0, tally
            acknowledged.update(tally.clicks)
            server.start()
        stored = await stored_tokens(fresh_database, list(acknowledged))
        lost = set(acknowledged) - stored
        print(f"kill -9 durable: 2 trials, {len(acknowledged)} acknowledged, {len(lost)} lost")
        assert lost == set()
        # The restarted service serves again.
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            r = await client.get(f"/r/{link['code']}")
            assert r.status_code == 302
    finally:
        server.stop()


def _gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_async_mode_loses_only_clicks_inside_the_lag_bound(fresh_database, tmp_path):
    """The database stops committing (a lock holds the writer), load goes on, kill -9.

    Every click the kill loses was answered within one lag window: once the oldest
    uncommitted click is older than the bound, 302s wait for their commit. And the last
    scrape before the kill reported exactly how many clicks were exposed.
    """
    max_lag_ms = 300
    server = Server(
        fresh_database,
        tmp_path / "server.log",
        AFFILIATE_CLICK_DURABILITY="async",
        AFFILIATE_CLICK_MAX_LAG_MS=str(max_lag_ms),
        AFFILIATE_CLICK_FLUSH_INTERVAL_MS="50",
    )
    server.start()
    blocker = await asyncpg.connect(plain(fresh_database))
    try:
        admin = server.keys("admin")
        tally = Tally()
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            link = await make_link(client, admin)
            assert (await client.get(f"/r/{link['code']}")).status_code == 302
            workers = [
                asyncio.create_task(click_load(client, link["code"], tally, stop, PER_WORKER))
                for _ in range(WORKERS)
            ]
            await asyncio.sleep(0.5)
            # The writer's rollup update now waits on this lock: nothing commits.
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute(
                "SELECT 1 FROM click_rollups_hourly WHERE link_id = $1 FOR UPDATE",
                uuid.UUID(link["id"]),
            )
            stalled_at = time.monotonic()
            await asyncio.sleep(1.2)
            exposed = _gauge((await client.get("/metrics")).text, "affiliate_clicks_unconfirmed")
            await asyncio.to_thread(server.kill9)
            stop.set()
            await asyncio.gather(*workers)
        await tx.rollback()
        stored = await stored_tokens(fresh_database, list(tally.clicks))
        lost = sorted(tally.clicks[t] for t in tally.clicks if t not in stored)
        after_stall = sum(1 for at in tally.clicks.values() if at >= stalled_at)
        spread = lost[-1] - lost[0] if lost else 0.0
        print(
            f"kill -9 async: {len(tally.clicks)} acknowledged, {after_stall} after the stall, "
            f"{len(lost)} lost within {spread * 1000:.0f} ms, gauge said {exposed:.0f}"
        )
        assert lost, "the stall should have left answered clicks uncommitted"
        # 200 ms for the client's view of answer times on a busy machine.
        assert spread <= max_lag_ms / 1000 + 0.2
        assert exposed == len(lost)
    finally:
        await blocker.close()
        server.stop()
