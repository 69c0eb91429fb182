"""The durable floor of bench/redirect.py: the least an app can do and still answer a 302 only
once its click is committed, with the rows the service stores.

An ASGI app that, for every request, makes a click record of the bench link's (a new id, the
time, random visitor hashes, the bench's user agent and sub1), queues it, and answers the
bare app's 302 once its batch has committed. One task cuts a batch whenever one of two
connections is free, as the service's click writer does, and writes it with the service's
own statement (`service.redirect.batches.write_batch`: the clicks, their visitor-days and
hourly rollups), on a pool made as the service's redirect pool. What it leaves out is
everything else the redirect does: the link lookup, signing the click id, hashing the
visitor, the bot and deep-link checks, the Location, the writer's lag and failure handling.

Run by bench/redirect.py with `uvicorn redirect_floor:floor_app`; configured by
BENCH_FLOOR_DATABASE_URL (a postgresql:// URL), BENCH_FLOOR_CODE (the link whose clicks it
writes) and BENCH_LOCATION (the Location it answers, as the bare app's).
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from redirect import BARE_302, EMPTY_BODY, USER_AGENT, lifespan

from service.kit.ids import new_id
from service.redirect.batches import ClickRecord, KnownAgents, write_batch
from service.redirect.runtime import POOL_SIZE, nothing_to_reset

# As long as a signed click id (the record's click_token): the rows are the service's size.
TOKEN = "c2" + "A" * 70
IN_FLIGHT = 2  # as the service's click writer
APPLICATION = "bench-redirect-floor"

_UNAVAILABLE = {
    "type": "http.response.start",
    "status": 503,
    "headers": [(b"content-length", b"0"), (b"retry-after", b"1")],
}


class GroupCommit:
    """Clicks queued and committed in batches, up to IN_FLIGHT at once; each click's future
    resolved once its batch has committed."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: list[tuple[ClickRecord, asyncio.Future[None]]] = []
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._wakeup = asyncio.Event()
        self._known = KnownAgents()
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, record: ClickRecord) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((record, future))
        self._wakeup.set()
        return future

    async def run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Cut once a connection is free: what queues meanwhile joins the batch.
            await self._slots.acquire()
            batch, self._queue = self._queue, []
            task = asyncio.create_task(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[ClickRecord, asyncio.Future[None]]]) -> None:
        try:
            async with self._pool.acquire() as conn:
                await write_batch(
                    conn,
                    [record for record, _ in batch],
                    maybe_stored=False,
                    known_agents=self._known,
                    own_transaction=True,
                )
                for _, future in batch:
                    future.set_result(None)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()
        finally:
            self._slots.release()


_state: dict[str, Any] = {}


async def _start() -> None:
    dsn = os.environ["BENCH_FLOOR_DATABASE_URL"]
    pool = await asyncpg.create_pool(
        dsn,
        min_size=2,
        max_size=POOL_SIZE,
        server_settings={"timezone": "UTC", "application_name": APPLICATION},
        reset=nothing_to_reset,
    )
    assert pool is not None
    row = await pool.fetchrow(
        "SELECT id, partner_id, program_id FROM links WHERE code = $1",
        os.environ["BENCH_FLOOR_CODE"],
    )
    assert row is not None, "the floor's link does not exist"
    writer = GroupCommit(pool)
    _state.update(
        pool=pool,
        writer=writer,
        ids=(row["id"], row["partner_id"], row["program_id"]),
        task=asyncio.create_task(writer.run()),
    )


async def _stop() -> None:
    _state["task"].cancel()
    await _state["pool"].close()


async def floor_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The durable floor: a click committed, then the bare app's 302."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send, _start, _stop)
        return
    link, partner, program = _state["ids"]
    record = (
        new_id(),
        datetime.now(UTC),
        link,
        partner,
        program,
        TOKEN,
        os.urandom(16),
        os.urandom(16),
        USER_AGENT,
        None,
        None,
        "bench",
        None,
        None,
        None,
        None,
        False,
        True,
        None,
    )
    try:
        await _state["writer"].submit(record)
    except Exception:
        await send(_UNAVAILABLE)
    else:
        await send(BARE_302)
    await send(EMPTY_BODY)
