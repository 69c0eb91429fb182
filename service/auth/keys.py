"""API keys: generated once, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import NotFound, ValidationFailed
from service.kit.time import utc_now
from service.models import ApiKey, Partner, Program, Role

KEY_PREFIX = "aff_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's role and what it is bound to."""

    key_id: uuid.UUID
    role: Role
    program_ids: frozenset[uuid.UUID]
    partner_id: uuid.UUID | None

    def sees_program(self, program_id: uuid.UUID) -> bool:
        """Admin and finance see every program; merchants only theirs."""
        if self.role == Role.merchant:
            return program_id in self.program_ids
        if self.role == Role.partner:
            return not self.program_ids or program_id in self.program_ids
        return True

    def sees_partner(self, partner_id: uuid.UUID | None) -> bool:
        """A partner key sees only its own partner."""
        if self.role == Role.partner:
            return partner_id is not None and partner_id == self.partner_id
        return True


def hash_key(key: str) -> bytes:
    """sha256 of the key; keys carry 256 random bits, so no slow hash is needed."""
    return hashlib.sha256(key.encode()).digest()


def generate_key() -> tuple[str, str]:
    """A new key and its lookup prefix."""
    prefix = secrets.token_hex(6)
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def split_prefix(key: str) -> str | None:
    """The lookup prefix of a key, or None when it is not shaped like one."""
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, rest = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != 12 or not rest:
        return None
    return prefix


async def create_key(
    session: AsyncSession,
    role: Role,
    *,
    program_ids: Sequence[uuid.UUID] = (),
    partner_id: uuid.UUID | None = None,
    name: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key's hash; return the row and the plain key (shown once)."""
    errors = []
    if role == Role.partner and partner_id is None:
        errors.append({"field": "partner_id", "message": "a partner key needs a partner"})
    if role != Role.partner and partner_id is not None:
        errors.append({"field": "partner_id", "message": "only partner keys bind a partner"})
    if role == Role.merchant and not program_ids:
        errors.append({"field": "program_ids", "message": "a merchant key needs a program"})
    if role in (Role.admin, Role.finance) and program_ids:
        errors.append({"field": "program_ids", "message": f"{role} keys see every program"})
    if errors:
        raise ValidationFailed(errors)
    if partner_id is not None and await session.get(Partner, partner_id) is None:
        raise NotFound(f"partner {partner_id} does not exist")
    for pid in program_ids:
        if await session.get(Program, pid) is None:
            raise NotFound(f"program {pid} does not exist")
    key, prefix = generate_key()
    row = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=hash_key(key),
        role=role,
        program_ids=list(program_ids),
        partner_id=partner_id,
    )
    session.add(row)
    await session.flush()
    return row, key


async def revoke_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    """Mark a key revoked; it stops working within the auth cache's lifetime."""
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"api key {key_id} does not exist")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
    _cache.clear()
    return row


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    """Every key, oldest first (hashes are never shown)."""
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


# A short-lived cache so that every request does not pay a query for its key.
# Revocation is seen at once by this instance and within CACHE_SECONDS by others.
CACHE_SECONDS = 5.0
_cache: dict[bytes, tuple[float, Principal | None]] = {}


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    """The principal for a presented key, or None."""
    prefix = split_prefix(key)
    if prefix is None:
        return None
    digest = hash_key(key)
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    principal = None
    if row is not None and row.revoked_at is None and hmac.compare_digest(row.key_hash, digest):
        principal = Principal(
            key_id=row.id,
            role=Role(row.role),
            program_ids=frozenset(row.program_ids or ()),
            partner_id=row.partner_id,
        )
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[digest] = (now + CACHE_SECONDS, principal)
    return principal
