"""Workers as processes on one database: each event once per endpoint, and a delivery held by
a worker killed with -9 is delivered again after its lease."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.conftest import make_key, serving, settings_for_tests
from tests.events.receiver import receiving
from tests.factories import create_partner
from tests.hardening.served import need_machine_postgres, plain

LEASE_SECONDS = 2


def _worker(database_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": plain(database_url),
        "AFFILIATE_MIGRATE": "0",
        "AFFILIATE_WEBHOOK_ALLOW_PRIVATE": "true",
        "AFFILIATE_WORKER_POLL_SECONDS": "0.05",
        "AFFILIATE_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
        "AFFILIATE_WORKER_BATCH": "5",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "service", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@asynccontextmanager
async def _app(database_url: str) -> AsyncIterator[tuple[object, object, dict[str, str]]]:
    async with serving(settings_for_tests(webhook_allow_private=True), database_url) as s:
        async with s.client() as client:
            yield s.app, client, await make_key(s.app, "admin")


@pytest.fixture
async def database(fresh_database_url):
    need_machine_postgres()
    return fresh_database_url


async def test_two_workers_deliver_each_event_once_per_endpoint(database):
    events = 40
    with receiving() as rx, receiving() as rx2:
        async with _app(database) as (_, client, admin):
            for url in (rx.url, rx2.url):
                r = await client.post(
                    "/v1/webhook-endpoints",
                    json={"url": url, "events": ["partner.created"]},
                    headers=admin,
                )
                assert r.status_code == 201, r.text
            workers = [_worker(database), _worker(database)]
            try:
                for _ in range(events):
                    await create_partner(client, admin)
                await rx.wait_for(events, within=60)
                await rx2.wait_for(events, within=60)
                await asyncio.sleep(1.0)  # anything sent twice would have come by now
            finally:
                for w in workers:
                    _stop(w)
        for receiver in (rx, rx2):
            ids = Counter(g.headers["webhook-id"] for g in receiver.all())
            assert len(ids) == events and set(ids.values()) == {1}, ids
        # Both endpoints got the same events.
        assert {g.headers["webhook-id"] for g in rx.all()} == {
            g.headers["webhook-id"] for g in rx2.all()
        }


async def test_a_worker_killed_mid_delivery_is_followed_by_a_retry(database):
    # The receiver holds the first request past the kill; the second worker sends it again.
    with receiving(delay=4.0) as rx:
        async with _app(database) as (_, client, admin):
            r = await client.post(
                "/v1/webhook-endpoints",
                json={"url": rx.url, "events": ["partner.created"]},
                headers=admin,
            )
            assert r.status_code == 201
            endpoint = r.json()["id"]
            first = _worker(database)
            try:
                await create_partner(client, admin)
                await rx.wait_for(1, within=30)
                first.send_signal(signal.SIGKILL)
                first.wait()
            finally:
                _stop(first)
            rx.delay = 0.0
            second = _worker(database)
            try:
                got = await rx.wait_for(2, within=30)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 15
                while loop.time() < deadline:
                    items = (
                        await client.get(
                            f"/v1/webhook-endpoints/{endpoint}/deliveries", headers=admin
                        )
                    ).json()["items"]
                    if items and items[0]["status"] == "succeeded":
                        break
                    await asyncio.sleep(0.1)
            finally:
                _stop(second)
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    [delivery] = items
    assert delivery["status"] == "succeeded"
    # The killed worker recorded nothing: the one attempt on record is the retry's.
    assert delivery["attempt_count"] == 1


async def test_shutdown_gives_back_what_it_holds(database):
    """SIGTERM during a slow delivery: the attempt ends (or its lease is released), the worker
    exits, and nothing stays leased to it."""
    with receiving(delay=1.0) as rx:
        async with _app(database) as (app, client, admin):
            r = await client.post(
                "/v1/webhook-endpoints",
                json={"url": rx.url, "events": ["partner.created"]},
                headers=admin,
            )
            assert r.status_code == 201
            worker = _worker(database)
            try:
                await create_partner(client, admin)
                await rx.wait_for(1, within=30)
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=30) == 0
            finally:
                _stop(worker)
            from sqlalchemy import select

            from service.models import EventDelivery

            async with app.state.sessionmaker() as session:  # type: ignore[attr-defined]
                rows = (await session.scalars(select(EventDelivery))).all()
    assert [(d.status, d.locked_by) for d in rows] == [("succeeded", None)]
