"""The NATS click log's async mode under a JetStream slower than the load: past the lag
bound a click waits for its acknowledgement (as the PostgreSQL writer's async mode does),
and losses are logged as a count, not a line per click."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from service.config import Settings
from service.redirect.clicklog import NatsClickLog


class _SlowJetStream:
    """Publishes whose acknowledgements come only when the test says so."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.acks: list[asyncio.Future[None]] = []
        self.waited = 0
        self.refuse = refuse
        # Cleared: publish_async waits, as nats-py's does while its in-flight limit is reached.
        self.room = asyncio.Event()
        self.room.set()

    async def publish_async(self, subject: str, payload: bytes, **_: Any) -> asyncio.Future[None]:
        await self.room.wait()
        if self.refuse:
            raise ConnectionError("no route to JetStream")
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack

    async def publish(self, subject: str, payload: bytes, **_: Any) -> None:
        self.waited += 1

    def ack_all(self) -> None:
        for ack in self.acks:
            if not ack.done():
                ack.set_result(None)


class _Connection:
    is_connected = True

    def __init__(self, js: _SlowJetStream) -> None:
        self._js = js

    def jetstream(self, **_: Any) -> _SlowJetStream:
        return self._js


class _NoLag:
    def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def seconds(self) -> float | None:
        return 0.0


def _log(js: _SlowJetStream, **settings: Any) -> NatsClickLog:
    return NatsClickLog(
        _Connection(js),  # type: ignore[arg-type]
        Settings(click_log="nats://127.0.0.1:1", click_durability="async", **settings),
        lag=_NoLag(),  # type: ignore[arg-type]
    )


def _record() -> tuple[Any, ...]:
    ids = [uuid.uuid4() for _ in range(4)]
    at = datetime(2026, 4, 2, 10, 30, tzinfo=UTC)
    return (
        ids[0],
        at,
        ids[1],
        ids[2],
        ids[3],
        "c1",
        b"ip",
        b"v",
        "ua",
        *[None] * 7,
        False,
        True,
        None,
    )


async def test_past_the_lag_bound_an_async_click_waits_for_its_acknowledgement():
    js = _SlowJetStream()
    clicks = _log(js, click_max_lag_ms=100, click_publish_timeout_ms=5000)
    clicks.start()
    assert clicks.submit(_record()) is None
    await asyncio.sleep(0.01)
    assert len(js.acks) == 1  # published, not acknowledged yet
    assert clicks.submit(_record()) is None  # within the bound: answered at once
    await asyncio.sleep(0.15)
    # The oldest click JetStream has not acknowledged is past the bound: this one waits.
    waiting = clicks.submit(_record())
    assert waiting is not None
    await waiting
    assert js.waited == 1 and clicks.unconfirmed == 2 and clicks.lag() >= 0.15
    js.ack_all()
    await asyncio.sleep(0)
    # Caught up: async again.
    assert clicks.unconfirmed == 0 and clicks.lag() == 0
    assert clicks.submit(_record()) is None
    later = asyncio.get_running_loop().call_later(0.05, js.ack_all)
    await asyncio.wait_for(clicks.close(), 5)
    later.cancel()
    assert clicks.published == 4 and clicks.lost == 0


async def test_a_click_waiting_for_room_to_be_published_counts_in_the_lag():
    js = _SlowJetStream()
    js.room.clear()
    clicks = _log(js, click_max_lag_ms=100, click_publish_timeout_ms=5000)
    clicks.start()
    assert clicks.submit(_record()) is None
    await asyncio.sleep(0.15)
    # Not published yet, for longer than the bound: the next click waits for its own.
    assert clicks.lag() >= 0.15
    waiting = clicks.submit(_record())
    assert waiting is not None
    await waiting
    js.room.set()
    later = asyncio.get_running_loop().call_later(0.05, js.ack_all)
    await asyncio.wait_for(clicks.close(), 5)
    later.cancel()
    assert clicks.lost == 0 and clicks.unconfirmed == 0


async def test_losses_are_logged_as_a_count_not_a_line_each(caplog):
    js = _SlowJetStream(refuse=True)
    clicks = _log(js)
    clicks.start()
    with caplog.at_level(logging.ERROR, logger="service.redirect.clicklog"):
        for _ in range(50):
            clicks.submit(_record())
        await asyncio.wait_for(clicks.close(), 5)
    assert clicks.lost == 50 and clicks.unconfirmed == 0
    lines = [r.getMessage() for r in caplog.records]
    # The first loss at once, the rest counted in one line at shutdown.
    assert lines == [
        "1 answered click(s) not acknowledged by JetStream (the last: no route to JetStream)",
        "49 answered click(s) not acknowledged by JetStream (the last: no route to JetStream)",
    ]
