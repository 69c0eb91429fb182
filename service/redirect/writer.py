"""Group commit of clicks: one task writes whatever has queued, with the rollups, in one
transaction (`write_batch`, in redirect.batches); a batch may be written again safely, the
click id being the key."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from service.kit.dberrors import database_unavailable
from service.redirect.batches import ClickRecord, KnownAgents, write_batch

log = logging.getLogger(__name__)

CLICKS_WRITTEN = Counter("affiliate_clicks_written_total", "Clicks committed by the click writer")
CLICKS_LOST = Counter(
    "affiliate_clicks_lost_total", "Clicks answered in async mode but never stored"
)
UNCONFIRMED = Gauge(
    "affiliate_clicks_unconfirmed",
    "Clicks answered in async mode and not committed yet (what a crash would lose)",
)
LAG_SECONDS = Gauge(
    "affiliate_click_writer_lag_seconds", "Age of the oldest click not committed yet"
)
BATCH_SECONDS = Histogram(
    "affiliate_click_batch_seconds",
    "Time to commit one batch of clicks",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)


class WriterClosed(RuntimeError):
    """The writer no longer takes clicks (the process is shutting down)."""


@dataclass(frozen=True)
class WriterHealth:
    """What /readyz and the metrics say about the click writer."""

    can_commit: bool
    consecutive_failures: int
    lag_seconds: float
    last_commit_seconds_ago: float | None
    queued: int
    unconfirmed: int
    lost: int


class ClickWriter:
    """Queues clicks and commits them in batches (group commit).

    One task takes whatever has queued whenever a connection is free and writes it as one
    transaction; up to `in_flight` transactions run at once, so the next batch is being
    written while the previous one commits. A batch's clicks are answered as soon as it
    commits, and the clicks that queued meanwhile and wait for a commit go next from the
    same task. Durable mode: `submit` returns a future
    resolved once the click's batch has committed (or failed). Async mode: `submit`
    returns None; batches go out at most every `flush_interval` seconds (sooner when
    `batch_max` clicks wait), and a failed batch is retried. Once the oldest click not yet
    committed is older than `max_lag` seconds, async mode hands out futures as durable
    mode does, so it never answers for more clicks than that window holds. `close` drains
    the queue.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        durable: bool,
        flush_interval: float,
        batch_max: int,
        max_lag: float = 1.0,
        in_flight: int = 2,
        max_queued: int | None = None,
    ) -> None:
        self._pool = pool
        self.durable = durable
        self._flush_interval = flush_interval
        self._batch_max = batch_max
        self._max_lag = max_lag
        self._slots = asyncio.Semaphore(in_flight)
        # Async mode keeps failed batches for a retry; past this many, new clicks wait
        # for their commit as in durable mode.
        self._max_queued = max_queued or max(100_000, 50 * batch_max)
        # Three lists in step: the click, the future of a request waiting for it (None
        # once answered), and when it was queued (monotonic seconds).
        self._records: list[ClickRecord] = []
        self._futures: list[asyncio.Future[None] | None] = []
        # Ids of clicks whose earlier try may have committed.
        self._suspect: set[uuid.UUID] = set()
        self._known_agents = KnownAgents()
        self._queued_at: list[float] = []
        # A request waits on a queued click: flush now, not at the end of the interval.
        self._urgent = False
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        # Each batch being written, with the time its oldest click was queued (inf once it
        # has committed, while its connection goes back to the pool).
        self._flushes: dict[asyncio.Task[None], float] = {}
        self._failures = 0
        self._last_commit: float | None = None
        self.committed = 0
        self.lost = 0
        # Clicks answered with a 302 in async mode and not committed yet: what a crash
        # of this process would lose.
        self.unconfirmed = 0

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="click-writer")
        UNCONFIRMED.set_function(lambda: self.unconfirmed)
        LAG_SECONDS.set_function(self.lag)

    @property
    def queued(self) -> int:
        """Clicks waiting for the next batch."""
        return len(self._records)

    def lag(self, now: float | None = None) -> float:
        """Seconds since the oldest click not yet committed was queued (0 when none is)."""
        now = time.monotonic() if now is None else now
        oldest = self._queued_at[0] if self._queued_at else now
        for since in self._flushes.values():
            oldest = min(oldest, since)
        return now - oldest

    def unloaded_seconds(self) -> float | None:
        """How far reports may trail the answered clicks: 0 in durable mode (a 302 leaves
        after its commit), else the age of the oldest answered click not committed yet."""
        return self.lag() if self.unconfirmed else 0.0

    def health(self) -> WriterHealth:
        """Whether the writer is committing, and how far behind it is."""
        now = time.monotonic()
        lag = self.lag(now)
        return WriterHealth(
            can_commit=self._failures == 0 and lag <= self._max_lag,
            consecutive_failures=self._failures,
            lag_seconds=lag,
            last_commit_seconds_ago=None if self._last_commit is None else now - self._last_commit,
            queued=len(self._records),
            unconfirmed=self.unconfirmed,
            lost=self.lost,
        )

    async def probe(self) -> bool:
        """After failures with nothing left to retry, try an empty commit on the pool."""
        if self._failures == 0 or self._records or self._flushes:
            return self._failures == 0
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT 1")
        except Exception:
            return False
        # Durable mode retries nothing, so without traffic nothing else would ever clear
        # the failures; an idle writer whose database answers again can commit.
        if not self._records and not self._flushes:
            self._failures = 0
        return self._failures == 0

    def submit(self, record: ClickRecord) -> asyncio.Future[None] | None:
        """Queue a click; in durable mode, the future of its commit."""
        if self._closing:
            raise WriterClosed("the click writer is shutting down")
        now = time.monotonic()
        future: asyncio.Future[None] | None = None
        if self.durable or len(self._records) >= self._max_queued or self._lagging(now):
            # Async mode turns durable while the database is failing or far behind: this
            # click's 302 waits for the commit, or becomes a 503. A 302 is never sent for
            # a click that could then be lost beyond the lag bound, and memory stays
            # bounded by the requests in flight.
            future = asyncio.get_running_loop().create_future()
            self._urgent = True
        else:
            self.unconfirmed += 1
        records = self._records
        records.append(record)
        self._futures.append(future)
        self._queued_at.append(now)
        # The writer is needed now by a click that waits for its commit, by the first click
        # queued (it sleeps while none is) and by a full batch. Any other click of async
        # mode goes with the batch the writer is already timing: waking it for each made it
        # start its timed wait (a task and a timer) again, 6% of an async click's instructions.
        if future is not None or len(records) == 1 or len(records) >= self._batch_max:
            if not self._wakeup.is_set():
                self._wakeup.set()
        return future

    def _lagging(self, now: float) -> bool:
        oldest = now - self._max_lag
        if self._queued_at and self._queued_at[0] < oldest:
            return True
        for since in self._flushes.values():
            if since < oldest:
                return True
        return False

    async def close(self) -> None:
        """Take no more clicks and wait until every queued one is written."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        last_flush = 0.0
        while True:
            if not self._records:
                if self._closing and not self._flushes:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if (
                not self.durable
                and not self._closing
                and not self._urgent
                and len(self._records) < self._batch_max
            ):
                # Async mode trades latency for bigger batches, within the bound.
                wait = last_flush + self._flush_interval - time.monotonic()
                if wait > 0:
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), wait)
                    except TimeoutError:
                        pass
                    continue
            # The batch is cut only once a connection is free: what queues meanwhile joins it.
            await self._slots.acquire()
            if not self._records:
                self._slots.release()
                continue
            last_flush = time.monotonic()
            records, futures, oldest = self._cut()
            task = asyncio.create_task(self._flush(records, futures, oldest))
            self._flushes[task] = oldest
            task.add_done_callback(self._flushed)

    def _cut(self) -> tuple[list[ClickRecord], list[asyncio.Future[None] | None], float]:
        # The next batch: what has queued, up to batch_max; with when its oldest was queued.
        n = self._batch_max
        records, futures = self._records[:n], self._futures[:n]
        oldest = self._queued_at[0]
        del self._records[:n], self._futures[:n], self._queued_at[:n]
        self._urgent = any(f is not None for f in self._futures)
        return records, futures, oldest

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushes.pop(task, None)
        self._slots.release()
        self._wakeup.set()

    async def _write(self, records: list[ClickRecord], committed: Callable[[], None]) -> None:
        # A batch holding a click from a try that failed may be partly stored already: its
        # statement skips the clicks stored (write_batch's maybe_stored). Every other batch
        # is all new, and goes in with a plain INSERT.
        suspect = bool(self._suspect) and any(rec[0] in self._suspect for rec in records)
        try:
            await self._write_once(records, committed, maybe_stored=suspect)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            # Most often a pooled connection the server closed (restart,
            # pg_terminate_backend) that asyncpg had not noticed yet; the pool replaces
            # it. The first try may have committed, so the second is the idempotent one.
            log.info("click batch retried on a fresh connection: %s", exc)
            self._suspect.update(rec[0] for rec in records)
            await self._write_once(records, committed, maybe_stored=True)
        if suspect or self._suspect:
            self._suspect.difference_update(rec[0] for rec in records)

    async def _write_once(
        self, records: list[ClickRecord], committed: Callable[[], None], *, maybe_stored: bool
    ) -> None:
        written = False
        try:
            async with self._pool.acquire() as conn:
                with BATCH_SECONDS.time():
                    await write_batch(
                        conn,
                        records,
                        maybe_stored=maybe_stored,
                        known_agents=self._known_agents,
                        # Every click of a durable batch waits for the commit: nothing it
                        # answered can be left out by committing on the statement's own.
                        own_transaction=self.durable,
                    )
                written = True
                # The batch is in: its clicks are answered before the connection goes back
                # to the pool, whose release takes a task and a turn of the event loop
                # (asyncio.shield) that the 302s need not wait for. The clicks that come in
                # meanwhile join the next batch: batches grow, each costing less a click.
                committed()
        except Exception:
            if not written:
                raise
            # Not the batch's failure: it committed. The pool drops a broken connection.
            log.warning("a click writer connection did not go back to the pool", exc_info=True)

    async def _flush(
        self, records: list[ClickRecord], futures: list[asyncio.Future[None] | None], oldest: float
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        while True:
            try:
                await self._write(
                    records, functools.partial(self._answered, task, records, futures)
                )
            except Exception as exc:
                if database_unavailable(exc):
                    await self._failed(records, futures, oldest, exc)
                else:
                    await self._isolate(records, futures, exc)
                return
            # Clicks that wait for a commit take this slot's next turn at once: handed back
            # to the writer's loop, they would wait for the task's end, the slot, the loop's
            # wakeup and a new task, a turn of the event loop each, under load a batch's
            # worth of other requests each.
            if not self._records or not self._urgent:
                return
            records, futures, oldest = self._cut()
            self._flushes[task] = oldest

    def _answered(
        self,
        task: asyncio.Task[None],
        records: list[ClickRecord],
        futures: list[asyncio.Future[None] | None],
    ) -> None:
        # Committed: the batch no longer counts in the lag while its connection goes back.
        self._flushes[task] = math.inf
        self._committed(records, futures)

    def _committed(
        self, records: list[ClickRecord], futures: list[asyncio.Future[None] | None]
    ) -> None:
        self._failures = 0
        self._last_commit = time.monotonic()
        self.committed += len(records)
        CLICKS_WRITTEN.inc(len(records))
        for future in futures:
            if future is None:
                self.unconfirmed -= 1
            elif not future.done():
                future.set_result(None)

    def _lose(self, count: int, why: object) -> None:
        if count:
            self.lost += count
            self.unconfirmed -= count
            CLICKS_LOST.inc(count)
            log.error("%d answered clicks could not be stored: %s", count, why)

    async def _isolate(
        self,
        records: list[ClickRecord],
        futures: list[asyncio.Future[None] | None],
        exc: Exception,
    ) -> None:
        # The database refused the batch for what is in it, not for being down: retrying
        # it whole would fail forever and every later click would queue behind it. Each
        # click goes alone; those refused alone are dropped (counted as lost if answered).
        log.error("click batch of %d refused, writing one by one: %s", len(records), exc)
        self._suspect.update(rec[0] for rec in records)
        for i, (record, future) in enumerate(zip(records, futures, strict=True)):
            try:
                await self._write([record], functools.partial(self._committed, [record], [future]))
            except Exception as one:
                if database_unavailable(one):
                    rest = slice(i, None)
                    await self._failed(records[rest], futures[rest], time.monotonic(), one)
                    return
                if future is None:
                    self._lose(1, one)
                elif not future.done():
                    future.set_exception(one)
                    future.exception()
                continue

    async def _failed(
        self,
        records: list[ClickRecord],
        futures: list[asyncio.Future[None] | None],
        oldest: float,
        exc: Exception,
    ) -> None:
        self._failures += 1
        if self.durable:
            log.error("click batch of %d failed: %s", len(records), exc)
            for future in futures:
                if future is not None and not future.done():
                    future.set_exception(exc)
                    # The request may be gone (client hung up); do not warn about it.
                    future.exception()
            return
        if self._closing and self._failures >= 5:
            # Shutting down with the database still unreachable: this is when these
            # clicks are lost.
            waiting = [f for f in (*futures, *self._futures) if f is not None]
            self._lose(len(records) + len(self._records) - len(waiting), exc)
            for future in waiting:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()
            self._records.clear()
            self._futures.clear()
            self._queued_at.clear()
            self._suspect.clear()
            return
        log.warning("click batch of %d failed, will retry: %s", len(records), exc)
        # Clicks whose request is waiting answer now (503); the others are retried, and
        # keep the time they were queued, so the lag counts from their first try.
        kept = []
        for record, future in zip(records, futures, strict=True):
            if future is None:
                kept.append(record)
            elif not future.done():
                future.set_exception(exc)
                future.exception()
        # Their try may have committed (an error after COMMIT): the next one is idempotent.
        self._suspect.update(rec[0] for rec in kept)
        self._records[:0] = kept
        self._futures[:0] = [None] * len(kept)
        self._queued_at[:0] = [oldest] * len(kept)
        # The slot stays taken during the pause, so a broken database is not hammered.
        await asyncio.sleep(min(0.1 * 2**self._failures, 5.0))
