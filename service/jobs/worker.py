"""The background worker: a small registry of jobs, each run in its own loop.

Every job claims its own work in PostgreSQL, so any number of processes may run the same
jobs. A job is `Job(name, every_seconds, run)`, `run` taking the Runtime and answering how
much it did; a job that did a full batch runs again at once. Adding one is a line in JOBS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.config import Settings
from service.events import delivery
from service.jobs.deliveries import deliver_due
from service.kit.time import utc_now
from service.partnering.bounties import run_click_bounties

log = logging.getLogger(__name__)

# How long shutdown waits for attempts in flight (each ends within delivery's 10 s timeout)
# before it cancels them and gives their leases back.
SHUTDOWN_GRACE_SECONDS = 12.0


@dataclass(frozen=True)
class Runtime:
    """What jobs run with."""

    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    http: httpx.AsyncClient
    worker_id: str


@dataclass(frozen=True)
class Job:
    """A periodic job; `every_seconds` None: the worker's poll interval."""

    name: str
    every_seconds: float | None
    run: Callable[[Runtime], Awaitable[int]]
    full_batch: Callable[[Runtime], int] = lambda rt: rt.settings.worker_batch


async def pay_click_bounties(rt: Runtime) -> int:
    """The click bounties of every ended day not paid yet (each day claimed under its lock)."""
    return await run_click_bounties(rt.sessionmaker, utc_now())


JOBS: list[Job] = [
    Job("event_deliveries", None, deliver_due),
    # Days end once a day; every five minutes pays a day soon after it ends, and late clicks.
    # One run pays everything due, so a large count is no reason to run again at once.
    Job("click_bounties", 300, pay_click_bounties, full_batch=lambda rt: 2**62),
]


class Worker:
    """Runs JOBS until stopped; stop() lets each finish its round (or releases it)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        jobs: list[Job] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._jobs = list(JOBS if jobs is None else jobs)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.runtime: Runtime | None = None

    async def start(self) -> None:
        """Start one loop per job."""
        worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.runtime = Runtime(self._sessionmaker, self._settings, delivery.client(), worker_id)
        self._tasks = [
            asyncio.create_task(self._loop(job), name=f"job:{job.name}") for job in self._jobs
        ]

    async def _loop(self, job: Job) -> None:
        rt = self.runtime
        assert rt is not None
        every = job.every_seconds or self._settings.worker_poll_seconds
        while not self._stopping.is_set():
            done = 0
            try:
                done = await job.run(rt)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database away, say: try again next round, the work stays claimed or due.
                log.exception("job %s failed; retrying in %.1fs", job.name, every)
            if done >= job.full_batch(rt):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), every)

    async def stop(self) -> None:
        """Stop taking work; wait for rounds in flight, then cancel (leases released)."""
        self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.runtime is not None:
            await self.runtime.http.aclose()


async def run_forever(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """`python -m service worker`: the jobs until SIGTERM or SIGINT."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(sessionmaker, settings)
    await worker.start()
    print("worker running: " + ", ".join(j.name for j in JOBS), flush=True)
    await stop.wait()
    await worker.stop()
