"""The redirect's link cache: bounded LRU in process, kept right by LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import asyncpg

from service.tracking.urls import DeepLinkRefused, validate_deep_link

log = logging.getLogger(__name__)

CHANNEL = "affiliate_cache"  # the triggers of migration 0005 notify on it

# Partners in these states keep their links working, but their clicks earn nothing.
UNATTRIBUTABLE_PARTNER_STATUSES = frozenset({"suspended", "terminated"})

LOOKUP_SQL = """
SELECT l.id, l.program_id, l.partner_id, l.destination_url, l.params, l.status,
       extract(epoch FROM l.expires_at)::float8 AS expires_at,
       p.click_param, p.fallback_url, p.allowed_domains, pa.status AS partner_status
FROM links l
JOIN programs p ON p.id = l.program_id
JOIN partners pa ON pa.id = l.partner_id
WHERE l.code = $1
"""


class LinkEntry:
    """What the redirect needs to know about one link, flattened for the hot path."""

    __slots__ = (
        "active",
        "allowed_domains",
        "attributable",
        "click_param",
        "destination_url",
        "expires_at",
        "fallback_url",
        "link_id",
        "params",
        "partner_id",
        "program_id",
    )

    def __init__(self, row: asyncpg.Record | dict[str, Any]) -> None:
        self.link_id: uuid.UUID = row["id"]
        self.program_id: uuid.UUID = row["program_id"]
        self.partner_id: uuid.UUID = row["partner_id"]
        self.destination_url: str = row["destination_url"]
        raw = row["params"]
        pairs = json.loads(raw) if isinstance(raw, str) else raw
        self.params: tuple[tuple[str, str], ...] = tuple((str(k), str(v)) for k, v in pairs or ())
        self.active: bool = row["status"] == "active"
        # Unix seconds, so that the hot path compares floats, not datetimes.
        self.expires_at: float | None = row["expires_at"]
        self.click_param: str = row["click_param"]
        self.allowed_domains: tuple[str, ...] = tuple(row["allowed_domains"] or ())
        self.fallback_url: str | None = _kept_fallback(row["fallback_url"], self.allowed_domains)
        self.attributable: bool = row["partner_status"] not in UNATTRIBUTABLE_PARTNER_STATUSES


def _kept_fallback(url: str | None, allowed_domains: tuple[str, ...]) -> str | None:
    # A fallback stored before it had to be on an allowed domain is not followed: a paused
    # link must not become a redirect to anywhere.
    if not url:
        return None
    try:
        validate_deep_link(url, allowed_domains)
    except DeepLinkRefused:
        return None
    return url


Loader = Callable[[str], Awaitable[LinkEntry | None]]


class LinkCache:
    """Code -> LinkEntry (or None for an unknown code), least recently used out first.

    Only trusted while the NOTIFY listener is connected (`enabled`); otherwise every
    lookup goes to the database. A load that overlaps an invalidation is not kept, so a
    cached entry is never older than the last notification.
    """

    def __init__(self, loader: Loader, max_size: int) -> None:
        self._loader = loader
        self._max_size = max_size
        self._entries: OrderedDict[str, LinkEntry | None] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[LinkEntry | None]] = {}
        self._generation = 0
        self.enabled = False

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, code: str) -> bool:
        return code in self._entries

    async def get(self, code: str) -> LinkEntry | None:
        """The link for `code`, or None when no link has it."""
        entries = self._entries
        if code in entries:
            entries.move_to_end(code)
            return entries[code]
        if not self.enabled or self._max_size == 0:
            return await self._loader(code)
        pending = self._inflight.get(code)
        if pending is not None:
            # Many visitors of a fresh link at once make one query, not one each.
            return await asyncio.shield(pending)
        return await self._load(code)

    async def _load(self, code: str) -> LinkEntry | None:
        generation = self._generation
        future: asyncio.Future[LinkEntry | None] = asyncio.get_running_loop().create_future()
        self._inflight[code] = future
        try:
            entry = await self._loader(code)
        except BaseException as exc:
            future.set_exception(exc)
            # Nobody else may be waiting; the exception must not be reported as unretrieved.
            future.exception()
            raise
        finally:
            if self._inflight.get(code) is future:
                del self._inflight[code]
        future.set_result(entry)
        if self.enabled and generation == self._generation:
            self._entries[code] = entry
            if len(self._entries) > self._max_size:
                self._entries.popitem(last=False)
        return entry

    def invalidate_code(self, code: str) -> None:
        """Forget one code (its link changed, or a link now has it)."""
        self._generation += 1
        self._entries.pop(code, None)
        self._inflight.pop(code, None)

    def invalidate_owner(self, kind: str, owner_id: uuid.UUID) -> None:
        """Forget every link of a program or partner."""
        self._generation += 1
        attr = "program_id" if kind == "program" else "partner_id"
        stale = [
            code
            for code, entry in self._entries.items()
            if entry is not None and getattr(entry, attr) == owner_id
        ]
        for code in stale:
            del self._entries[code]
        self._inflight.clear()

    def clear(self) -> None:
        """Forget everything."""
        self._generation += 1
        self._entries.clear()
        self._inflight.clear()

    def on_listening(self, listening: bool) -> None:
        """Trust the cache only while notifications arrive; what it held may have missed one."""
        self.clear()
        self.enabled = listening

    def on_notify(self, payload: str) -> None:
        """Apply one notification of the `affiliate_cache` channel."""
        kind, _, key = payload.partition(":")
        if kind == "api_key":
            return  # the key cache's, not ours
        if kind == "link":
            self.invalidate_code(key)
            return
        if kind in ("program", "partner"):
            try:
                self.invalidate_owner(kind, uuid.UUID(key))
                return
            except ValueError:
                pass
        log.warning("unexpected cache notification %r; clearing the link cache", payload)
        self.clear()


class NotifiedCache(Protocol):
    """A cache kept right by the `affiliate_cache` channel."""

    def on_notify(self, payload: str) -> None: ...

    def on_listening(self, listening: bool) -> None: ...


class NotifyListener:
    """One connection that LISTENs for cache invalidations and reconnects when it drops.

    Every cache of the instance is told each notification, and told when listening starts
    or stops: a change made while it was down would otherwise go unseen.
    """

    def __init__(
        self,
        dsn: str,
        caches: Sequence[NotifiedCache],
        *,
        health_interval: float = 5.0,
        retry_delay: float = 0.5,
    ) -> None:
        self._dsn = dsn
        self._caches = tuple(caches)
        self._health_interval = health_interval
        self._retry_delay = retry_delay
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = asyncio.Event()
        self.connection: asyncpg.Connection | None = None
        self.reconnects = 0

    def start(self) -> None:
        """Run the listener in the background."""
        self._task = asyncio.create_task(self._run(), name="link-cache-listener")

    async def wait_connected(self, seconds: float) -> bool:
        """Wait until LISTEN is in place; False when it did not happen in time."""
        try:
            await asyncio.wait_for(self.connected.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        for cache in self._caches:
            cache.on_notify(str(payload))

    def _listening(self, listening: bool) -> None:
        for cache in self._caches:
            cache.on_listening(listening)

    async def _run(self) -> None:
        delay = self._retry_delay
        while not self._stopping:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notification)
                # Whatever was cached before LISTEN began may have missed a notification.
                self._listening(True)
                self.connection = conn
                self.connected.set()
                delay = self._retry_delay
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self._health_interval)
                    except TimeoutError:
                        # A half-open TCP connection never reports its death by itself.
                        await conn.fetchval("SELECT 1", timeout=self._health_interval)
                log.warning("link cache listener connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("link cache listener failed; reconnecting", exc_info=True)
            finally:
                self._listening(False)
                self.connected.clear()
                self.connection = None
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            if self._stopping:
                return
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
