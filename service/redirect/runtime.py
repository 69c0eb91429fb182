"""What the redirect runs on: its own asyncpg pool, the link cache and its listener, the
click writer (or the NATS click log and a loader of it) and partition upkeep. Started and
stopped by the FastAPI lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence

import asyncpg
from prometheus_client import Gauge

from service.config import ClickDurability, Settings
from service.kit.clientip import ClientAddress
from service.kit.dberrors import database_unavailable
from service.redirect.cache import (
    LOOKUP_SQL,
    LinkCache,
    LinkEntry,
    NotifiedCache,
    NotifyListener,
)
from service.redirect.clickloader import ClickLoader, StreamLag
from service.redirect.clicklog import NatsClickLog, connect, ensure_stream
from service.redirect.partitions import ensure_partitions, maintain_partitions
from service.redirect.writer import ClickWriter
from service.secrets_store import Secrets
from service.tracking.clickid import ClickIdSigner

log = logging.getLogger(__name__)

POOL_SIZE = 4
# A batch or lookup stuck longer than this fails (and its redirects answer 503).
COMMAND_TIMEOUT = 10.0
LISTENER_START_TIMEOUT = 5.0

CLICKS_LAG = Gauge(
    "affiliate_clicks_lag_seconds",
    "How far reports trail the answered clicks: the age of the oldest one not in PostgreSQL "
    "yet (NaN when the click stream cannot be asked)",
)


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style URL asyncpg takes, from our SQLAlchemy one."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class RedirectRuntime:
    """The redirect's moving parts, bundled so the lifespan can start and stop them together."""

    def __init__(
        self,
        settings: Settings,
        secrets: Secrets,
        pool: asyncpg.Pool,
        cache: LinkCache,
        listener: NotifyListener,
        writer: ClickWriter | NatsClickLog,
        loader: ClickLoader | None = None,
    ) -> None:
        self.settings = settings
        self.signer = ClickIdSigner(secrets.click_keys, secrets.click_key_id)
        self.visitor_keys = secrets.visitor_keys
        self.pool = pool
        self.cache = cache
        self.listener = listener
        self.writer = writer
        self.loader = loader
        self.durable = writer.durable
        self.ip_header = (
            settings.client_ip_header.lower().encode("latin-1")
            if settings.client_ip_header
            else None
        )
        self.client_address = ClientAddress(settings.trusted_proxies)
        self.country_header = (
            settings.country_header.lower().encode("latin-1") if settings.country_header else None
        )
        self._maintenance: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        url: str,
        settings: Settings,
        secrets: Secrets,
        *,
        also_notify: Sequence[NotifiedCache] = (),
    ) -> RedirectRuntime:
        """Connect, make this month's partitions, start listening and writing.

        The one NOTIFY listener also keeps `also_notify` (the API key cache) right.
        """
        dsn = asyncpg_dsn(url)
        pool = await asyncpg.create_pool(
            dsn,
            min_size=2,
            max_size=POOL_SIZE,
            command_timeout=COMMAND_TIMEOUT,
            server_settings={"timezone": "UTC", "application_name": "affiliate-redirect"},
            reset=nothing_to_reset,
        )
        assert pool is not None
        try:
            async with pool.acquire() as conn:
                await ensure_partitions(conn)
        except Exception:
            # Clicks still land in clicks_default; the maintenance task tries again.
            log.exception("could not create click partitions at start")

        async def load(code: str) -> LinkEntry | None:
            try:
                row = await pool.fetchrow(LOOKUP_SQL, code)
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                # asyncpg replaces a pooled connection once it sees the server closed
                # it, but the first use may come before it does: once more, fresh.
                row = await pool.fetchrow(LOOKUP_SQL, code)
            return None if row is None else LinkEntry(row)

        cache = LinkCache(load, settings.link_cache_size)
        listener = NotifyListener(dsn, [cache, *also_notify])
        listener.start()
        if not await listener.wait_connected(LISTENER_START_TIMEOUT):
            log.warning("link cache listener not connected yet; links are read uncached")
        writer: ClickWriter | NatsClickLog
        loader = None
        if settings.click_log:
            try:
                nc = await connect(settings, "affiliate-redirect")
                js = nc.jetstream()
                await ensure_stream(js, settings)
            except BaseException:
                await listener.stop()
                await pool.close()
                raise
            writer = NatsClickLog(nc, settings, lag=StreamLag(js, settings.click_stream))
            if settings.click_loader:
                loader = ClickLoader(nc, pool, settings)
                loader.start()
        else:
            writer = ClickWriter(
                pool,
                durable=settings.click_durability == ClickDurability.durable,
                flush_interval=settings.click_flush_interval_ms / 1000,
                batch_max=settings.click_batch_max,
                max_lag=settings.click_max_lag_ms / 1000,
            )
        writer.start()
        CLICKS_LAG.set_function(lambda: _or_nan(writer.unloaded_seconds()))
        runtime = cls(settings, secrets, pool, cache, listener, writer, loader)
        runtime._maintenance = asyncio.create_task(
            maintain_partitions(pool), name="click-partitions"
        )
        return runtime

    async def close(self) -> None:
        """Flush every queued click, then stop listening and close the pool."""
        try:
            await self.writer.close()
            if self.loader is not None:
                await self.loader.close()
            if isinstance(self.writer, NatsClickLog):
                # With NATS gone the client's last flush fails; there is nothing left to send.
                with contextlib.suppress(OSError):
                    await self.writer.connection.close()
        finally:
            if self._maintenance is not None:
                self._maintenance.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._maintenance
            await self.listener.stop()
            await self.pool.close()


async def nothing_to_reset(conn: asyncpg.Connection) -> None:
    """An asyncpg pool's `reset`: nothing sent when a connection goes back."""
    # Called by the pool on release in place of Connection.reset(), whose query (advisory
    # unlock, CLOSE ALL, UNLISTEN *, RESET ALL) cost a round trip per batch of clicks and per
    # link lookup. asyncpg still rolls back a transaction left open before calling this.
    # Nothing run on this pool leaves any of that state behind: its settings come with the
    # connection (server_settings), the partition lock is a transaction's, and the NOTIFY
    # listener has a connection of its own.
    return None


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value
