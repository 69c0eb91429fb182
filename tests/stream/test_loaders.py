"""Loaders as their own processes on the machine's PostgreSQL: every click JetStream
acknowledged reaches PostgreSQL once, across a loader's kill -9 and a NATS restart, and with
two service instances and two loaders on one database and one stream."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from service import migrate
from tests.hardening.served import (
    ROOT,
    Server,
    Tally,
    click_load,
    make_link,
    need_machine_postgres,
    plain,
    stored_tokens,
)
from tests.stream.natsserver import (
    OwnNats,
    delete_stream,
    need_machine_nats,
    stream_name,
    wait_for,
)

WORKERS = 4
PER_WORKER = 100


@pytest.fixture
async def fresh_database(pg_server):
    need_machine_postgres()
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url)
    return url


class Loader:
    """`python -m service click-loader` as a process of its own."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service", "click-loader"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


async def _rows_and_rollup(database_url: str, link_id: str) -> tuple[int, int, int]:
    """Click rows of the link, distinct click ids among them, and the rollup's count."""
    conn = await asyncpg.connect(plain(database_url))
    try:
        rows, distinct = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT id) FROM clicks WHERE link_id = $1",
            uuid.UUID(link_id),
        )
        rolled = await conn.fetchval(
            "SELECT coalesce(sum(clicks), 0) FROM click_rollups_hourly WHERE link_id = $1",
            uuid.UUID(link_id),
        )
    finally:
        await conn.close()
    return int(rows), int(distinct), int(rolled)


async def _all_stored(database_url: str, tally: Tally, seconds: float) -> set[str]:
    tokens = list(tally.clicks)

    async def done() -> bool:
        return len(await stored_tokens(database_url, tokens)) == len(tokens)

    await wait_for(done, seconds=seconds, delay=0.25)
    return set(tokens) - await stored_tokens(database_url, tokens)


async def test_every_acknowledged_click_is_loaded_once_across_loader_kill_and_nats_restart(
    fresh_database, tmp_path
):
    own = OwnNats(tmp_path / "store")
    own.start()
    stream = {
        "AFFILIATE_CLICK_LOG": own.url,
        "AFFILIATE_CLICK_STREAM": stream_name(),
        "AFFILIATE_CLICK_PUBLISH_TIMEOUT_MS": "1000",
        "AFFILIATE_CLICK_LOADER_ACK_WAIT": "2",
        "AFFILIATE_CLICK_LOADER_BATCH": "40",
    }
    server = Server(
        fresh_database, tmp_path / "server.log", AFFILIATE_CLICK_LOADER="false", **stream
    )
    loader_env = {
        **server.env,
        "AFFILIATE_MIGRATE": "0",
        # Batches stay unacknowledged long enough for the kill to land on one.
        "AFFILIATE_CLICK_LOADER_BATCH": "40",
    }
    loader = Loader(loader_env, tmp_path / "loader.log")
    try:
        loader.start()
        server.start()
        admin = server.keys("admin")
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            link = await make_link(client, admin)
            tally = Tally()
            stop = asyncio.Event()
            workers = [
                asyncio.create_task(click_load(client, link["code"], tally, stop, PER_WORKER))
                for _ in range(WORKERS)
            ]
            await asyncio.sleep(1.0)
            await asyncio.to_thread(loader.kill9)
            loader.start()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(own.kill9)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(own.start)
            await asyncio.gather(*workers)
        assert tally.server_errors == 0, tally
        assert len(tally.clicks) > 100, tally
        missing = await _all_stored(fresh_database, tally, seconds=30)
        assert missing == set()
        rows, distinct, rolled = await _rows_and_rollup(fresh_database, link["id"])
        # Redelivered batches stored nothing twice and counted nothing twice. A click
        # answered 503 may still be stored (JetStream took it after the deadline): rows
        # may exceed the 302s, never the other way.
        assert rows == distinct == rolled >= len(tally.clicks)
        print(
            f"loader kill -9 + NATS restart: {len(tally.clicks)} acknowledged, {rows} stored, "
            f"statuses {tally.statuses}"
        )
    finally:
        loader.stop()
        server.stop()
        own.stop()


async def test_two_instances_and_two_loaders_share_one_stream_and_database(
    fresh_database, tmp_path
):
    url = need_machine_nats()
    name = stream_name()
    stream = {
        "AFFILIATE_CLICK_LOG": url,
        "AFFILIATE_CLICK_STREAM": name,
        "AFFILIATE_CLICK_LOADER_BATCH": "20",
    }
    servers = [
        Server(fresh_database, tmp_path / f"server{i}.log", AFFILIATE_MIGRATE="0", **stream)
        for i in range(2)
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(server.start) for server in servers))
        admin = servers[0].keys("admin")
        tally = Tally()
        async with (
            httpx.AsyncClient(base_url=servers[0].base_url, timeout=10) as one,
            httpx.AsyncClient(base_url=servers[1].base_url, timeout=10) as two,
        ):
            link = await make_link(one, admin)
            stop = asyncio.Event()

            async def written() -> list[float]:
                counts = []
                for client in (one, two):
                    metrics = (await client.get("/metrics")).text
                    lines = [
                        line
                        for line in metrics.splitlines()
                        if line.startswith("affiliate_clicks_written_total ")
                    ]
                    assert lines, metrics
                    counts.append(float(lines[0].split()[1]))
                return counts

            # Which loader pulls a batch is the consumer's choice: on a busy machine one may
            # take a whole round, so rounds go on (a few at most) until both have taken some.
            for rounds in range(1, 6):
                await asyncio.gather(
                    *(
                        click_load(client, link["code"], tally, stop, PER_WORKER // 2)
                        for client in (one, two)
                        for _ in range(WORKERS)
                    )
                )
                assert tally.statuses == {302: rounds * WORKERS * PER_WORKER}
                missing = await _all_stored(fresh_database, tally, seconds=30)
                assert missing == set()
                if all(count > 0 for count in await written()):
                    break
            rows, distinct, rolled = await _rows_and_rollup(fresh_database, link["id"])
            assert rows == distinct == rolled == len(tally.clicks)
            # Both loaders took batches from the one consumer.
            assert all(count > 0 for count in await written())
    finally:
        for server in servers:
            server.stop()
        await delete_stream(url, name)


def test_the_loader_refuses_to_run_without_a_click_log(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFFILIATE_")}
    env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    out = subprocess.run(
        [sys.executable, "-m", "service", "click-loader"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "AFFILIATE_CLICK_LOG" in out.stderr
