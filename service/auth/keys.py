"""API keys: generated once, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from service.errors import NotFound, ValidationFailed
from service.kit.time import utc_now
from service.models import ApiKey, Partner, PartnerStatus, Program, Role

KEY_PREFIX = "aff_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's role and what it is bound to."""

    key_id: uuid.UUID
    role: Role
    program_ids: frozenset[uuid.UUID]
    partner_id: uuid.UUID | None

    def sees_program(self, program_id: uuid.UUID) -> bool:
        """Admin and finance see every program; merchants theirs; partners theirs when bound."""
        if self.role == Role.merchant:
            return program_id in self.program_ids
        if self.role == Role.partner:
            return not self.program_ids or program_id in self.program_ids
        return True


def principal_of(row: ApiKey) -> Principal:
    """The principal a stored key stands for."""
    return Principal(
        key_id=row.id,
        role=Role(row.role),
        program_ids=frozenset(row.program_ids or ()),
        partner_id=row.partner_id,
    )


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
    """Mark a key revoked; once committed it fails on every instance (NOTIFY api_key:<id>)."""
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"api key {key_id} does not exist")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
    forget_after_commit(session, key_id=key_id)
    return row


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    """Every key, oldest first (hashes are never shown)."""
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


# Keys are cached briefly so that every request does not pay a query for its key. A change
# that ends a key (revocation, the partner suspended or terminated) clears it from this
# instance's cache after its commit, and from every instance's through the NOTIFY that the
# database sends for it; CACHE_SECONDS bounds what a lost notification can cost.
CACHE_SECONDS = 5.0
CACHE_MAX = 10_000
# Partners in these states are locked out: their keys do not authenticate.
LOCKED_OUT_PARTNER = frozenset({PartnerStatus.suspended, PartnerStatus.terminated})


@dataclass(frozen=True, slots=True)
class _Cached:
    expires: float
    principal: Principal | None
    key_id: uuid.UUID | None
    partner_id: uuid.UUID | None


class KeyCache:
    """Key hash -> principal (None for a key that does not work), for CACHE_SECONDS at most.

    A lookup that overlaps a forget is not kept (`generation`): it may have read the key
    before the commit that ended it.
    """

    def __init__(self, seconds: float = CACHE_SECONDS, max_size: int = CACHE_MAX) -> None:
        self._seconds = seconds
        self._max_size = max_size
        self._entries: dict[bytes, _Cached] = {}
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, now: float) -> _Cached | None:
        """The live entry for a key hash, or None."""
        hit = self._entries.get(digest)
        if hit is None or hit.expires <= now:
            return None
        return hit

    def put(
        self,
        digest: bytes,
        now: float,
        principal: Principal | None,
        *,
        key_id: uuid.UUID | None,
        partner_id: uuid.UUID | None,
        generation: int,
    ) -> None:
        """Remember what a key hash authenticates as, read while `generation` was current."""
        if generation != self.generation:
            return
        if len(self._entries) >= self._max_size:
            self._entries.clear()
        self._entries[digest] = _Cached(now + self._seconds, principal, key_id, partner_id)

    def forget(
        self, *, key_id: uuid.UUID | None = None, partner_id: uuid.UUID | None = None
    ) -> None:
        """Drop what is cached for one key, or for every key of one partner."""
        self.generation += 1
        stale = [
            digest
            for digest, hit in self._entries.items()
            if (key_id is not None and hit.key_id == key_id)
            or (partner_id is not None and hit.partner_id == partner_id)
        ]
        for digest in stale:
            del self._entries[digest]

    def clear(self) -> None:
        """Drop everything."""
        self.generation += 1
        self._entries.clear()

    def on_notify(self, payload: str) -> None:
        """Apply one notification of the `affiliate_cache` channel (links and programs: not ours)."""
        kind, _, key = payload.partition(":")
        if kind not in ("api_key", "partner"):
            return
        try:
            owner = uuid.UUID(key)
        except ValueError:
            self.clear()
            return
        if kind == "api_key":
            self.forget(key_id=owner)
        else:
            self.forget(partner_id=owner)

    def on_listening(self, listening: bool) -> None:
        """The listener (re)connected or dropped: what was cached meanwhile may be stale."""
        self.clear()


def forget_after_commit(
    session: AsyncSession, *, key_id: uuid.UUID | None = None, partner_id: uuid.UUID | None = None
) -> None:
    """Clear a key, or a partner's keys, from this instance's cache once the session commits.

    Clearing earlier would let a request in between cache the old state again. Sessions
    that carry no cache (the command line) rely on the NOTIFY alone.
    """
    session.info.setdefault(_FORGET, []).append((key_id, partner_id))


_FORGET = "forget_keys"
SESSION_CACHE = "key_cache"


@event.listens_for(Session, "after_commit")
def _forget_committed(session: Session) -> None:
    pending = session.info.pop(_FORGET, None)
    cache: KeyCache | None = session.info.get(SESSION_CACHE)
    if cache is None or not pending:
        return
    for key_id, partner_id in pending:
        cache.forget(key_id=key_id, partner_id=partner_id)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_FORGET, None)


async def authenticate(session: AsyncSession, cache: KeyCache, key: str) -> Principal | None:
    """The principal for a presented key, or None (unknown, revoked, or partner locked out)."""
    prefix = split_prefix(key)
    if prefix is None:
        return None
    digest = hash_key(key)
    now = time.monotonic()
    hit = cache.get(digest, now)
    if hit is not None:
        return hit.principal
    generation = cache.generation
    found = (
        await session.execute(
            select(ApiKey, Partner.status)
            .outerjoin(Partner, Partner.id == ApiKey.partner_id)
            .where(ApiKey.prefix == prefix)
        )
    ).first()
    row, partner_status = found if found is not None else (None, None)
    principal = None
    if (
        row is not None
        and row.revoked_at is None
        and partner_status not in LOCKED_OUT_PARTNER
        and hmac.compare_digest(row.key_hash, digest)
    ):
        principal = principal_of(row)
    cache.put(
        digest,
        now,
        principal,
        key_id=row.id if row is not None else None,
        partner_id=row.partner_id if row is not None else None,
        generation=generation,
    )
    return principal
