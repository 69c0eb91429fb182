"""Keys for visitor address hashes: one per UTC day, forgotten after a few days.

Visitors are counted per day (unique clicks are per link and UTC day), so a key that lives
one day is enough, as privacy-first analytics do. Once a day's key is deleted, nothing can
tell which address made a stored hash, not even from a full dump of the database.

Without AFFILIATE_HASH_KEY each day's key is random, made by the first instance that needs
it (INSERT ... ON CONFLICT DO NOTHING, so every instance on the database agrees) and deleted
after AFFILIATE_HASH_KEY_DAYS. With it, a day's key is HMAC(hash key, day): the secret lives
outside the database, and no table is needed.

The redirect never queries per click: today's and tomorrow's keys are cached, so the day
rolls over at midnight UTC in memory; a day missing from the cache is loaded once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from datetime import date, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from service.kit.keyedhash import HmacSha256
from service.kit.time import utc_now
from service.models import HashKey

log = logging.getLogger(__name__)

UPKEEP_SECONDS = 15 * 60
KEY_BYTES = 32


def derive(master: bytes, label: str) -> bytes:
    """A key for one purpose (a day, emails) from the key held outside the database."""
    return hmac.new(master, b"affiliate-hash\x00" + label.encode(), hashlib.sha256).digest()


class VisitorKeys:
    """The day's key for hashing visitor addresses, shared by every instance."""

    def __init__(self, engine: AsyncEngine, *, keep_days: int, master: bytes | None) -> None:
        self.engine = engine
        self.keep_days = keep_days
        self.master = master
        self._keys: dict[date, bytes] = {}
        # The same keys, prepared for hashing (two per click).
        self._hashers: dict[date, HmacSha256] = {}
        self._lock = asyncio.Lock()

    def cached(self, day: date) -> bytes | None:
        """The day's key when it is in memory."""
        return self._keys.get(day)

    def cached_hasher(self, day: date) -> HmacSha256 | None:
        """The day's key, ready to hash with, when it is in memory (the redirect's fast path)."""
        return self._hashers.get(day)

    async def hasher_for(self, day: date) -> HmacSha256:
        """The day's key, ready to hash with, loaded (or made) once when it is not cached."""
        await self.key_for(day)
        return self._hashers[day]

    async def key_for(self, day: date) -> bytes:
        """The day's key, loaded (or made) once when it is not cached."""
        key = self._keys.get(day)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(day)
            if key is None:
                key = await self._load(day)
                self._keys[day] = key
                self._hashers[day] = HmacSha256(key)
        return key

    async def _load(self, day: date) -> bytes:
        if self.master is not None:
            return derive(self.master, f"visitor:{day.isoformat()}")
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(HashKey)
                .values(day=day, key=secrets.token_bytes(KEY_BYTES))
                .on_conflict_do_nothing(index_elements=["day"])
            )
            key = await conn.scalar(select(HashKey.key).where(HashKey.day == day))
        assert key is not None
        return bytes(key)

    def oldest_kept(self, today: date) -> date:
        """The first day whose key is still kept: today and the keep_days - 1 before it."""
        return today - timedelta(days=self.keep_days - 1)

    async def upkeep(self, now: datetime | None = None) -> None:
        """Have today's and tomorrow's keys ready; delete (and forget) the expired ones."""
        today = (now or utc_now()).date()
        for day in (today, today + timedelta(days=1)):
            await self.key_for(day)
        oldest = self.oldest_kept(today)
        for day in [d for d in self._keys if d < oldest]:
            del self._keys[day]
            self._hashers.pop(day, None)
        if self.master is None:
            async with self.engine.begin() as conn:
                await conn.execute(delete(HashKey).where(HashKey.day < oldest))

    async def maintain(self) -> None:
        """Upkeep forever (a background task): every quarter hour, and just after midnight."""
        while True:
            try:
                await self.upkeep()
            except Exception:
                log.exception("visitor key upkeep failed; will retry")
            now = utc_now()
            midnight = datetime.combine(
                now.date() + timedelta(days=1), datetime.min.time(), now.tzinfo
            )
            await asyncio.sleep(min(UPKEEP_SECONDS, (midnight - now).total_seconds() + 1))
