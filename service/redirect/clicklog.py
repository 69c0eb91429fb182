"""Clicks through NATS JetStream (AFFILIATE_CLICK_LOG=nats://...): the redirect publishes
each click to a stream and answers once JetStream has acknowledged it. Here: the publisher,
the message codec, the connection and the stream; the loaders that take the clicks from the
stream into PostgreSQL, and their lag, are in redirect.clickloader."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgpack
import nats
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType
from prometheus_client import Counter

from service.config import ClickDurability, Settings
from service.redirect.batches import ClickRecord
from service.redirect.writer import CLICKS_LOST, WriterClosed, WriterHealth

if TYPE_CHECKING:
    from service.redirect.clickloader import StreamLag

log = logging.getLogger(__name__)

_PROGRAM = 4
# A record as it travels: version, then the CLICK_COLUMNS tuple with its UUIDs as 16 bytes
# and clicked_at as integer microseconds since the epoch (msgpack has no UUID or datetime,
# and this is about half the size of the JSON).
_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

LOSS_LOG_SECONDS = 10.0

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


class NatsClickLog:
    """Where the redirect puts clicks when the click log is NATS; the same face as the
    ClickWriter (submit, health, probe, close).

    Durable mode: `submit` returns an awaitable that ends once JetStream acknowledged the
    click, or fails after the publish timeout (the redirect's 503). Async mode: `submit`
    queues the click and returns None; a task publishes the queue without waiting, and a
    click JetStream does not acknowledge within the timeout is counted as lost. Once the
    oldest click not acknowledged yet is older than the lag bound (click_max_lag_ms), or
    past `max_queued` clicks waiting, async mode waits as durable mode does, as the
    PostgreSQL writer's does: it never answers for more clicks than that window holds,
    and a JetStream slower than the load slows the answers instead of losing clicks.
    """

    def __init__(
        self, nc: NATS, settings: Settings, *, max_queued: int = 100_000, lag: StreamLag
    ) -> None:
        self.connection = nc
        self._js = nc.jetstream(timeout=settings.click_publish_timeout_ms / 1000)
        self._prefix = subject_prefix(settings) + "."
        self._stream = settings.click_stream
        self._timeout = settings.click_publish_timeout_ms / 1000
        self._max_lag = settings.click_max_lag_ms / 1000
        self.durable = settings.click_durability == ClickDurability.durable
        self._max_queued = max_queued
        self.stream_lag = lag
        # Async mode: (subject, payload, queued at) waiting for the publisher task.
        self._queue: deque[tuple[str, bytes, float]] = deque()
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
        # Losses are logged at most every LOSS_LOG_SECONDS, with how many since the last line:
        # a JetStream that stops answering under load would otherwise log every click.
        self._unlogged = 0
        self._last_loss: object = None
        self._logged_at = -LOSS_LOG_SECONDS

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
        now = time.monotonic()
        if self.durable or len(self._queue) >= self._max_queued or self._lagging(now):
            return self._publish(subject, payload)
        self.unconfirmed += 1
        self._queue.append((subject, payload, now))
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

    def _lagging(self, now: float) -> bool:
        return self._oldest(now) < now - self._max_lag

    def _oldest(self, now: float) -> float:
        # When the oldest click not acknowledged yet was queued (`now` when none is). The
        # publishes in flight, then the queue, hold clicks in the order they were queued.
        in_flight = next(iter(self._in_flight.values()), None)
        if in_flight is not None:
            return in_flight
        return self._queue[0][2] if self._queue else now

    def _lose(self, why: object) -> None:
        self._failures += 1
        self.lost += 1
        CLICKS_LOST.inc()
        self._unlogged += 1
        self._last_loss = why
        now = time.monotonic()
        if now - self._logged_at >= LOSS_LOG_SECONDS:
            self._log_losses()
            self._logged_at = now

    def _log_losses(self) -> None:
        if self._unlogged:
            log.error(
                "%d answered click(s) not acknowledged by JetStream (the last: %s)",
                self._unlogged,
                self._last_loss,
            )
            self._unlogged = 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # A click stays first in the queue until it is in flight, so that the lag sees it
            # while its publish waits for room among those in flight.
            subject, payload, queued = self._queue[0]
            try:
                # No wait_stall: its wait costs a task a publish, and room is made at the
                # latest by the timers below, which end each acknowledgement's wait.
                ack = await self._js.publish_async(subject, payload)
            except Exception as exc:
                self._queue.popleft()
                self.unconfirmed -= 1
                self._lose(exc)
                continue
            self._queue.popleft()
            self._in_flight[ack] = queued
            # publish_async has no deadline of its own: the timeout is ours, from the click's
            # answer on.
            remaining = max(0.001, queued + self._timeout - time.monotonic())
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
        return now - self._oldest(now)

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
        self._log_losses()
        await self.stream_lag.close()
