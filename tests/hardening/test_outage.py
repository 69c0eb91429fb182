"""The database cuts the service's connections again and again under redirect and conversion
load: answers are 503s with Retry-After (never a 500), nothing acknowledged is lost, and the
service recovers on its own."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from tests.conversions.factories import setup
from tests.hardening.served import (
    Server,
    Tally,
    click_load,
    need_machine_postgres,
    plain,
    stored_tokens,
)
from tests.links.factories import create_link

LOAD_SECONDS = 2.5
KILL_EVERY = 0.25


@pytest.fixture
async def fresh_database(pg_server):
    need_machine_postgres()
    return await pg_server.new_database()


async def _sales(
    client: httpx.AsyncClient,
    merchant: dict[str, str],
    program_id: str,
    tally: Tally,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        order = f"o-{secrets.token_hex(6)}"
        body = {
            "program_id": program_id,
            "type": "sale",
            "order_id": order,
            "amount": "100.00",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        try:
            r = await client.post("/v1/conversions", json=body, headers=merchant)
        except httpx.TransportError:
            tally.transport_errors += 1
            continue
        tally.saw(r)
        if r.status_code in (200, 201):
            tally.orders.append(order)


async def _terminate(database_url: str, stop: asyncio.Event) -> int:
    """pg_terminate_backend on every connection of the service, every KILL_EVERY seconds."""
    conn = await asyncpg.connect(plain(database_url))
    name = await conn.fetchval("SELECT current_database()")
    killed = 0
    try:
        while not stop.is_set():
            killed += await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()"
                " AND application_name LIKE 'affiliate-%'",
                name,
            )
            await asyncio.sleep(KILL_EVERY)
    finally:
        await conn.close()
    return killed


async def test_terminated_connections_give_503s_and_lose_nothing(fresh_database, tmp_path):
    server = Server(fresh_database, tmp_path / "server.log")
    server.start()
    try:
        admin = server.keys("admin")
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as client:
            program, partner = await setup(client, admin)
            link = await create_link(client, admin, program, partner)
            merchant = server.keys("merchant", "--program", program["id"])
            assert (await client.get(f"/r/{link['code']}")).status_code == 302

            clicks, sales = Tally(), Tally()
            stop = asyncio.Event()
            started = time.monotonic()
            killer = asyncio.create_task(_terminate(fresh_database, stop))
            load = [
                *(click_load(client, link["code"], clicks, stop, 10_000) for _ in range(6)),
                *(_sales(client, merchant, program["id"], sales, stop) for _ in range(3)),
            ]
            tasks = [asyncio.create_task(c) for c in load]
            await asyncio.sleep(LOAD_SECONDS)
            stop.set()
            await asyncio.gather(*tasks)
            killed = await killer
            took = time.monotonic() - started

            # Recovery without a restart: ready again, and both paths answer.
            for _ in range(100):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get(f"/r/{link['code']}")).status_code == 302
            r = await client.post(
                "/v1/conversions",
                json={
                    "program_id": program["id"],
                    "type": "sale",
                    "order_id": f"o-{secrets.token_hex(6)}",
                    "amount": "5.00",
                    "occurred_at": datetime.now(UTC).isoformat(),
                },
                headers=merchant,
            )
            assert r.status_code == 201, r.text
        assert server.proc is not None and server.proc.poll() is None

        print(
            f"outage: {killed} connections terminated in {took:.1f} s; "
            f"redirects {clicks.statuses}, conversions {sales.statuses}"
        )
        assert killed >= 5
        assert clicks.server_errors == 0 and sales.server_errors == 0
        assert clicks.no_retry_after == 0 and sales.no_retry_after == 0
        assert clicks.transport_errors == 0 and sales.transport_errors == 0
        # How many get through between cuts depends on how busy the machine is.
        assert clicks.clicks and sales.orders
        assert await stored_tokens(fresh_database, list(clicks.clicks)) == set(clicks.clicks)
        conn = await asyncpg.connect(plain(fresh_database))
        try:
            stored = await conn.fetchval(
                "SELECT count(*) FROM conversions WHERE order_id = ANY($1::text[])", sales.orders
            )
        finally:
            await conn.close()
        assert stored == len(sales.orders)
    finally:
        server.stop()
