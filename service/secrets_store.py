"""Per-database secrets: made once, shared by every instance on the database."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import Settings
from service.models import ServiceSecret
from service.tracking.clickid import parse_keys
from service.visitor_keys import VisitorKeys, derive


@dataclass(frozen=True)
class Secrets:
    # Keys the hashes of customer and partner emails. They are compared across conversions
    # and days (a customer's email against the partner's), so this key is stable: held
    # outside the database when AFFILIATE_HASH_KEY is set, else kept in it.
    email_key: bytes
    # Keys the hashes of visitor addresses, per UTC day: raw addresses are never stored.
    visitor_keys: VisitorKeys
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
    master = settings.hash_key.encode() if settings.hash_key else None
    # Without a key of the operator's, emails keep the key made for them (and for addresses,
    # before visitor keys were daily) when the database was first set up.
    email_key = derive(master, "email") if master else await _ensure(engine, "hash_key")
    visitor_keys = VisitorKeys(engine, keep_days=settings.hash_key_days, master=master)
    await visitor_keys.upkeep()
    if settings.click_keys:
        keys = parse_keys(settings.click_keys)
        current = settings.click_key_id or next(iter(keys))
        if current not in keys:
            raise ValueError("AFFILIATE_CLICK_KEY_ID names no key in AFFILIATE_CLICK_KEYS")
        return Secrets(
            email_key=email_key, visitor_keys=visitor_keys, click_keys=keys, click_key_id=current
        )
    click_key = await _ensure(engine, "click_key:k0")
    return Secrets(
        email_key=email_key,
        visitor_keys=visitor_keys,
        click_keys={"k0": click_key},
        click_key_id="k0",
    )
