"""Sign-in by one-time link, and the browser sessions it opens.

A link's token and a session's token are 256 random bits; only their sha256 is stored.
Each session gets an API key of its own (role and partner of the link, the plain key never
kept), and the pages build their Principal from that key's row: a session reads exactly
what a key of its partner reads, and what locks a key out (revocation, a suspended partner)
locks the session out too.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import (
    LOCKED_OUT_PARTNER,
    Principal,
    create_key,
    forget_after_commit,
    hash_key,
    principal_of,
)
from service.errors import NotFound, ProblemError, ValidationFailed
from service.kit.time import utc_now
from service.models import ApiKey, Partner, PortalLink, PortalSession, Role

LINK_LIFETIME = timedelta(hours=24)
COOKIE = "affiliate_portal"
SIGN_IN_PATH = "/portal/sign-in/"
# Roles a link may sign in as: merchants are shop backends, not people.
LINK_ROLES = frozenset({Role.admin, Role.finance, Role.partner})


class LinkNotValid(ProblemError):
    status, slug, title = 410, "link-not-valid", "Sign-in link not valid"

    def __init__(self) -> None:
        super().__init__(
            "this sign-in link has been used, has expired or was never issued; ask for a new one"
        )


def new_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def link_url(public_url: str, token: str) -> str:
    """The address a sign-in link opens."""
    return public_url.rstrip("/") + SIGN_IN_PATH + token


async def issue_link(
    session: AsyncSession,
    *,
    role: Role,
    partner_id: uuid.UUID | None,
    by: Principal | None,
    public_url: str,
) -> tuple[PortalLink, str]:
    """Store a new link (its hash); return it and its URL, valid 24 h and used once."""
    if role not in LINK_ROLES:
        raise ValidationFailed([{"field": "role", "message": "must be admin or finance"}])
    if role == Role.partner:
        if partner_id is None:
            raise ValidationFailed([{"field": "partner_id", "message": "required"}])
        if await session.get(Partner, partner_id) is None:
            raise NotFound(f"partner {partner_id} does not exist")
    elif partner_id is not None:
        raise ValidationFailed(
            [{"field": "partner_id", "message": "give either partner_id or role"}]
        )
    token = new_token()
    link = PortalLink(
        token_hash=hash_key(token),
        role=role,
        partner_id=partner_id,
        created_by=by.key_id if by is not None else None,
        expires_at=utc_now() + LINK_LIFETIME,
    )
    session.add(link)
    await session.flush()
    audit.record(
        session,
        by,
        "portal_link.created",
        "portal_link",
        link.id,
        {"role": str(role), "partner_id": str(partner_id) if partner_id else None},
    )
    return link, link_url(public_url, token)


async def link_usable(session: AsyncSession, token: str) -> bool:
    """Whether a link would sign in now (read only: a preview of the link uses nothing)."""
    found = await session.scalar(
        select(PortalLink.id).where(
            PortalLink.token_hash == hash_key(token),
            PortalLink.used_at.is_(None),
            PortalLink.expires_at > utc_now(),
        )
    )
    return found is not None


async def sign_in(session: AsyncSession, token: str, lifetime: timedelta) -> tuple[str, Principal]:
    """Use a link (once: the UPDATE claims it) and open a session; its token and principal."""
    now = utc_now()
    link = await session.scalar(
        update(PortalLink)
        .where(
            PortalLink.token_hash == hash_key(token),
            PortalLink.used_at.is_(None),
            PortalLink.expires_at > now,
        )
        .values(used_at=now)
        .returning(PortalLink)
    )
    if link is None:
        raise LinkNotValid()
    key, _ = await create_key(
        session,
        Role(link.role),
        partner_id=link.partner_id,
        name=f"portal session {now.date().isoformat()}",
    )
    session_token = new_token()
    row = PortalSession(
        token_hash=hash_key(session_token),
        api_key_id=key.id,
        link_id=link.id,
        expires_at=now + lifetime,
    )
    session.add(row)
    await session.flush()
    principal = principal_of(key)
    audit.record(session, principal, "portal_session.started", "portal_session", row.id, {})
    return session_token, principal


@dataclass(frozen=True)
class SignedIn:
    """A live session: its row id, its principal, and the token its forms are bound to."""

    session_id: uuid.UUID
    principal: Principal
    token: str


async def signed_in(session: AsyncSession, token: str | None) -> SignedIn | None:
    """The live session of a cookie, or None (unknown, ended, expired, or key locked out)."""
    if not token:
        return None
    found = (
        await session.execute(
            select(PortalSession, ApiKey, Partner.status)
            .join(ApiKey, ApiKey.id == PortalSession.api_key_id)
            .outerjoin(Partner, Partner.id == ApiKey.partner_id)
            .where(
                PortalSession.token_hash == hash_key(token),
                PortalSession.ended_at.is_(None),
                PortalSession.expires_at > utc_now(),
            )
        )
    ).first()
    if found is None:
        return None
    row, key, partner_status = found
    if key.revoked_at is not None or partner_status in LOCKED_OUT_PARTNER:
        return None
    return SignedIn(row.id, principal_of(key), token)


async def sign_out(session: AsyncSession, who: SignedIn) -> None:
    """End the session and revoke its key."""
    now = utc_now()
    await session.execute(
        update(PortalSession).where(PortalSession.id == who.session_id).values(ended_at=now)
    )
    await session.execute(
        update(ApiKey).where(ApiKey.id == who.principal.key_id).values(revoked_at=now)
    )
    forget_after_commit(session, key_id=who.principal.key_id)
