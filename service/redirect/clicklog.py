"""Clicks through NATS JetStream (AFFILIATE_CLICK_LOG=nats://...): the redirect publishes
each click to a stream and answers once JetStream has acknowledged it; loaders, in any
process, take batches from one durable pull consumer, write them with `write_batch` (the
click id is the key, so a batch delivered twice is stored once) and acknowledge after the
commit. A loader killed mid-batch leaves its messages unacknowledged: JetStream delivers
them again after the consumer's ack wait."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgpack
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
)
from prometheus_client import Counter

from service.config import ClickDurability, Settings
from service.kit.dberrors import database_unavailable
from service.redirect.writer import (
    CLICKS_LOST,
    CLICKS_WRITTEN,
    ClickRecord,
    WriterClosed,
    WriterHealth,
    write_batch,
)

log = logging.getLogger(__name__)

CONSUMER = "click-loader"
_PROGRAM = 4
# A record as it travels: version, then the CLICK_COLUMNS tuple with its UUIDs as 16 bytes
# and clicked_at as integer microseconds since the epoch (msgpack has no UUID or datetime,
# and this is about half the size of the JSON).
_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
LAG_REFRESH_SECONDS = 1.0
# A lag not refreshed for this long (NATS unreachable) is unknown, not stale.
LAG_STALE_SECONDS = 10.0
# A loader asked to stop finishes its batch; past this, it is cancelled (nothing is acked).
LOADER_CLOSE_SECONDS = 10.0

CLICKS_PUBLISHED = Counter(
    "affiliate_clicks_published_total", "Clicks JetStream acknowledged to this process"
)


def encode(record: ClickRecord) -> bytes:
    """A click record as one compact message payload."""
    at: datetime = record[1]
    markers = record[18]
    return msgpack.packb(
        (
            _VERSION,
            record[0].bytes,
            (at - _EPOCH) // _US,
            record[2].bytes,
            record[3].bytes,
            record[4].bytes,
            *record[5:18],
            list(markers) if markers else None,
        )
    )


def decode(payload: bytes) -> ClickRecord:
    """The click record a payload carries; ValueError when it is not one."""
    try:
        fields = msgpack.unpackb(payload)
        if fields[0] != _VERSION or len(fields) != 20:
            raise ValueError("not a click record of a known version")
        return (
            uuid.UUID(bytes=fields[1]),
            _EPOCH + timedelta(microseconds=fields[2]),
            uuid.UUID(bytes=fields[3]),
            uuid.UUID(bytes=fields[4]),
            uuid.UUID(bytes=fields[5]),
            *fields[6:19],
            fields[19],
        )
    except (msgpack.UnpackException, TypeError, IndexError, ValueError) as exc:
        raise ValueError(f"undecodable click message: {exc}") from exc


def subject_prefix(settings: Settings) -> str:
    """Subjects of the stream: `<stream, lower-cased>.<program id>` (clicks.<id> by
    default), so two deployments with their own stream names share a NATS cluster."""
    return settings.click_stream.lower()


async def connect(settings: Settings, name: str) -> NATS:
    """A connection that reconnects for ever: a NATS restart is waited out, not fatal."""
    assert settings.click_log is not None
    return await nats.connect(
        servers=[s.strip() for s in settings.click_log.split(",")],
        name=name,
        connect_timeout=5,
        reconnect_time_wait=0.5,
        max_reconnect_attempts=-1,
    )


async def ensure_stream(js: JetStreamContext, settings: Settings) -> None:
    """Create the stream when it is missing; an existing one is used as it is."""
    name = settings.click_stream
    try:
        await js.stream_info(name)
        return
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_stream(
            name=name,
            subjects=[f"{subject_prefix(settings)}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=settings.click_stream_replicas,
            max_age=float(settings.click_stream_max_age),
        )
    except nats.js.errors.BadRequestError:
        # Another instance created it meanwhile (with other settings): use that one.
        await js.stream_info(name)


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


class NatsClickLog:
    """Where the redirect puts clicks when the click log is NATS; the same face as the
    ClickWriter (submit, health, probe, close).

    Durable mode: `submit` returns an awaitable that ends once JetStream acknowledged the
    click, or fails after the publish timeout (the redirect's 503). Async mode: `submit`
    queues the click and returns None; a task publishes the queue without waiting, and a
    click JetStream does not acknowledge within the timeout is counted as lost. Past
    `max_queued` clicks waiting, async mode waits as durable mode does.
    """

    def __init__(
        self, nc: NATS, settings: Settings, *, max_queued: int = 100_000, lag: StreamLag
    ) -> None:
        self.connection = nc
        self._js = nc.jetstream(timeout=settings.click_publish_timeout_ms / 1000)
        self._prefix = subject_prefix(settings) + "."
        self._stream = settings.click_stream
        self._timeout = settings.click_publish_timeout_ms / 1000
        self.durable = settings.click_durability == ClickDurability.durable
        self._max_queued = max_queued
        self.stream_lag = lag
        # Async mode: (subject, payload, queued at) waiting for the publisher task.
        self._queue: list[tuple[str, bytes, float]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        # Async publishes sent and not acknowledged yet, by when they were queued.
        self._in_flight: dict[asyncio.Future[Any], float] = {}
        self._failures = 0
        self._last_ack: float | None = None
        self.published = 0
        self.lost = 0
        self.unconfirmed = 0

    def start(self) -> None:
        """Start the async publisher and the lag refresh."""
        self._task = asyncio.create_task(self._run(), name="click-publisher")
        self.stream_lag.start()

    def submit(self, record: ClickRecord) -> Awaitable[None] | None:
        """Hand a click to JetStream; in durable mode, what to await before the 302."""
        if self._closing:
            raise WriterClosed("the click log is shutting down")
        subject = self._prefix + record[_PROGRAM].hex
        payload = encode(record)
        if self.durable or len(self._queue) >= self._max_queued:
            return self._publish(subject, payload)
        self.unconfirmed += 1
        self._queue.append((subject, payload, time.monotonic()))
        if not self._wakeup.is_set():
            self._wakeup.set()
        return None

    async def _publish(self, subject: str, payload: bytes) -> None:
        try:
            await self._js.publish(subject, payload, timeout=self._timeout)
        except Exception:
            self._failures += 1
            raise
        self._acked()

    def _acked(self) -> None:
        self._failures = 0
        self._last_ack = time.monotonic()
        self.published += 1
        CLICKS_PUBLISHED.inc()

    def _lose(self, why: object) -> None:
        self._failures += 1
        self.lost += 1
        CLICKS_LOST.inc()
        log.error("an answered click was not acknowledged by JetStream: %s", why)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch, self._queue = self._queue, []
            for subject, payload, queued in batch:
                remaining = max(0.001, queued + self._timeout - time.monotonic())
                try:
                    ack = await self._js.publish_async(subject, payload, wait_stall=remaining)
                except Exception as exc:
                    self.unconfirmed -= 1
                    self._lose(exc)
                    continue
                self._in_flight[ack] = queued
                # publish_async has no deadline of its own: the timeout is ours.
                timer = loop.call_later(remaining, ack.cancel)
                ack.add_done_callback(functools.partial(self._async_done, timer=timer))

    def _async_done(self, ack: asyncio.Future[Any], *, timer: asyncio.TimerHandle) -> None:
        timer.cancel()
        self._in_flight.pop(ack, None)
        self.unconfirmed -= 1
        if ack.cancelled():
            self._lose("no acknowledgement within the publish timeout")
        elif ack.exception() is not None:
            self._lose(ack.exception())
        else:
            self._acked()

    def lag(self, now: float | None = None) -> float:
        """Seconds since the oldest async click not acknowledged yet was queued."""
        now = time.monotonic() if now is None else now
        oldest = self._queue[0][2] if self._queue else now
        for since in self._in_flight.values():
            oldest = min(oldest, since)
        return now - oldest

    def unloaded_seconds(self) -> float | None:
        """How far reports trail the answered clicks: the loaders' lag on the stream."""
        return self.stream_lag.seconds()

    def health(self) -> WriterHealth:
        """Whether JetStream acknowledges, and what waits for it."""
        now = time.monotonic()
        return WriterHealth(
            can_commit=self.connection.is_connected and self._failures == 0,
            consecutive_failures=self._failures,
            lag_seconds=self.lag(now),
            last_commit_seconds_ago=None if self._last_ack is None else now - self._last_ack,
            queued=len(self._queue) + len(self._in_flight),
            unconfirmed=self.unconfirmed,
            lost=self.lost,
        )

    async def probe(self) -> bool:
        """After failures, whether JetStream answers again (the stream is there)."""
        if self._failures == 0:
            return self.connection.is_connected
        try:
            await self._js.stream_info(self._stream)
        except Exception:
            return False
        if not self._queue and not self._in_flight:
            self._failures = 0
        return self._failures == 0

    async def close(self) -> None:
        """Take no more clicks; publish what is queued and wait for its acknowledgements."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._in_flight:
            # Each is cancelled by its own timer at the latest.
            await asyncio.wait(list(self._in_flight), timeout=self._timeout + 0.1)
        await self.stream_lag.close()


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
            return await write_batch(conn, records)

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
