"""Loading the NATS click stream into PostgreSQL: loaders, in any process, take batches from
one durable pull consumer, write them with `write_batch` (the click id is the key, so a batch
delivered twice is stored once) and acknowledge after the commit. A loader killed mid-batch
leaves its messages unacknowledged: JetStream delivers them again after the consumer's ack
wait. Also how far the loaders trail the stream (StreamLag)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from service.config import Settings
from service.kit.dberrors import database_unavailable
from service.redirect.batches import ClickRecord, KnownAgents, write_batch
from service.redirect.clicklog import decode, subject_prefix
from service.redirect.writer import CLICKS_LOST, CLICKS_WRITTEN

log = logging.getLogger(__name__)

CONSUMER = "click-loader"
LAG_REFRESH_SECONDS = 1.0
# A lag not refreshed for this long (NATS unreachable) is unknown, not stale.
LAG_STALE_SECONDS = 10.0
# A loader asked to stop finishes its batch; past this, it is cancelled (nothing is acked).
LOADER_CLOSE_SECONDS = 10.0


class StreamLag:
    """How far the loaders trail the stream: the age of the oldest click JetStream holds
    that no loader has acknowledged yet, refreshed every second from the consumer's state.
    """

    def __init__(self, js: JetStreamContext, stream: str) -> None:
        self._js = js
        self._stream = stream
        # Wall time of the oldest unloaded click at the last refresh (None: caught up).
        self._oldest: datetime | None = None
        self._refreshed: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Refresh in the background."""
        self._task = asyncio.create_task(self._run(), name="click-stream-lag")

    async def close(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def seconds(self) -> float | None:
        """Seconds of clicks not loaded yet; None when the stream could not be asked lately."""
        if self._refreshed is None or time.monotonic() - self._refreshed > LAG_STALE_SECONDS:
            return None
        if self._oldest is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - self._oldest).total_seconds())

    async def refresh(self) -> None:
        """Ask JetStream once."""
        try:
            info = await self._js.consumer_info(self._stream, CONSUMER, timeout=2)
        except nats.js.errors.NotFoundError:
            # No loader has ever run: every click the stream holds is unloaded.
            stream = await self._js.stream_info(self._stream)
            first = stream.state.first_seq if stream.state.messages else None
        else:
            unloaded = (info.num_pending or 0) + (info.num_ack_pending or 0)
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            first = floor + 1 if unloaded else None
        oldest = None
        if first is not None:
            try:
                msg = await self._js.get_msg(self._stream, first)
                oldest = msg.time
            except nats.js.errors.NotFoundError:
                # Aged out of the stream (max age) or deleted: only newer ones are left.
                stream = await self._js.stream_info(self._stream)
                if stream.state.messages:
                    oldest = (await self._js.get_msg(self._stream, stream.state.first_seq)).time
        self._oldest = oldest
        self._refreshed = time.monotonic()

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:
                log.debug("click stream lag not refreshed: %s", exc)
            await asyncio.sleep(LAG_REFRESH_SECONDS)


class ClickLoader:
    """One loader of the stream: fetch a batch from the shared durable consumer, write it
    to PostgreSQL with the rollups, acknowledge after the commit. Any number run at once
    (each batch goes to one of them); a batch whose loader died comes back after the ack
    wait, and `write_batch` stores each click once whatever the number of deliveries."""

    def __init__(
        self,
        nc: NATS,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self._js = nc.jetstream()
        self._pool = pool
        self._known_agents = KnownAgents()
        self._stream = settings.click_stream
        self._subject = f"{subject_prefix(settings)}.>"
        self._batch = settings.click_loader_batch
        self._ack_wait = float(settings.click_loader_ack_wait)
        self._on_batch = on_batch
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.loaded = 0

    def start(self) -> None:
        """Load in the background."""
        self._task = asyncio.create_task(self.run(), name="click-loader")

    async def close(self) -> None:
        """Finish the batch in hand, then stop; what is left stays in the stream."""
        self._stopping = True
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), LOADER_CLOSE_SECONDS)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._ack_wait,
            max_ack_pending=max(10_000, 8 * self._batch),
        )
        while True:
            try:
                return await self._js.pull_subscribe(
                    self._subject, durable=CONSUMER, stream=self._stream, config=config
                )
            except Exception as exc:
                if self._stopping:
                    raise
                log.warning("click loader cannot subscribe yet: %s", exc)
                await asyncio.sleep(1.0)

    async def run(self) -> None:
        """Load until closed."""
        sub = await self._subscribe()
        failures = 0
        while not self._stopping:
            try:
                msgs = await sub.fetch(self._batch, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:
                # Reconnecting (a NATS restart): the client comes back by itself.
                log.info("click loader fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            try:
                await self._load(msgs)
                failures = 0
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                failures += 1
                delay = min(0.2 * 2**failures, 5.0)
                log.warning(
                    "click batch of %d not loaded, redelivered in %.1fs: %s", len(msgs), delay, exc
                )
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=delay)
                await asyncio.sleep(delay)

    async def _load(self, msgs: list[Msg]) -> None:
        records: list[ClickRecord] = []
        good: list[Msg] = []
        for msg in msgs:
            try:
                records.append(decode(msg.data))
            except ValueError as exc:
                # Never loadable: redelivering it would only come back here.
                log.error("click message %s dropped: %s", msg.subject, exc)
                CLICKS_LOST.inc()
                await msg.term()
                continue
            good.append(msg)
        if records:
            try:
                new = await self._write(records)
            except Exception as exc:
                if database_unavailable(exc):
                    raise
                new = await self._isolate(records, good, exc)
                good = []
            CLICKS_WRITTEN.inc(new)
            self.loaded += new
            if self._on_batch is not None:
                self._on_batch(len(records), new)
        # After the commit: a loader that dies before these leaves the batch to another.
        for msg in good:
            await msg.ack()

    async def _write(self, records: list[ClickRecord]) -> int:
        async with self._pool.acquire() as conn:
            # The stream keeps every click until it is acked after this commit: the
            # statement may commit on its own (one round trip, not three).
            return await write_batch(
                conn, records, known_agents=self._known_agents, own_transaction=True
            )

    async def _isolate(self, records: list[ClickRecord], msgs: list[Msg], exc: Exception) -> int:
        # The database refused the batch for what is in it: each click goes alone, and one
        # refused alone is dropped rather than redelivered for ever.
        log.error("click batch of %d refused, loading one by one: %s", len(records), exc)
        new = 0
        for record, msg in zip(records, msgs, strict=True):
            try:
                new += await self._write([record])
            except Exception as one:
                if database_unavailable(one):
                    raise
                log.error("click %s dropped: %s", record[0], one)
                CLICKS_LOST.inc()
                await msg.term()
                continue
            await msg.ack()
        return new
