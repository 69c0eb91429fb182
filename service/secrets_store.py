"""Per-database secrets: made once, shared by every instance on the database."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.models import ServiceSecret
from service.redirect.clickid import parse_keys


@dataclass(frozen=True)
class Secrets:
    # Keys the hashes of visitor addresses and emails: raw addresses are never stored.
    hash_key: bytes
    click_keys: dict[str, bytes]
    click_key_id: str


async def _ensure(engine: AsyncEngine, name: str) -> bytes:
    async with engine.begin() as conn:
        await conn.execute(
            insert(ServiceSecret)
            .values(name=name, value=secrets.token_bytes(32))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = await conn.scalar(select(ServiceSecret.value).where(ServiceSecret.name == name))
    assert value is not None
    return bytes(value)


async def load_secrets(engine: AsyncEngine, settings: Settings) -> Secrets:
    """Secrets from the environment where given, else from (or into) the database."""
    hash_key = await _ensure(engine, "hash_key")
    if settings.click_keys:
        keys = parse_keys(settings.click_keys)
        current = settings.click_key_id or next(iter(keys))
        if current not in keys:
            raise ValueError("AFFILIATE_CLICK_KEY_ID names no key in AFFILIATE_CLICK_KEYS")
        return Secrets(hash_key=hash_key, click_keys=keys, click_key_id=current)
    click_key = await _ensure(engine, "click_key:k0")
    return Secrets(hash_key=hash_key, click_keys={"k0": click_key}, click_key_id="k0")
