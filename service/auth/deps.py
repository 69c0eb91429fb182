"""The Annotated auth dependencies every /v1 route declares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal, authenticate
from service.db import Session
from service.errors import Forbidden, TooManyRequests, Unauthorized
from service.models import Partner, PartnerStatus, Role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_address(request: Request) -> str:
    """The caller's address: the client IP header's, only as far as trusted proxies vouch."""
    peer = request.client.host if request.client else "unknown"
    header = request.app.state.settings.client_ip_header
    forwarded = request.headers.getlist(header) if header else []
    return request.app.state.client_address.resolve(peer, forwarded) if forwarded else peer


def refuse(request: Request, detail: str) -> Unauthorized | TooManyRequests:
    """A 401 for a failed authentication, or a 429 once its address has failed too often."""
    address = client_address(request)
    wait = request.app.state.auth_failures.fail(address)
    if wait is not None:
        return TooManyRequests("too many failed authentications from this address", wait)
    return Unauthorized(detail)


async def current_principal(request: Request, session: Session) -> Principal:
    """The caller, from `Authorization: Bearer <key>`; 401 otherwise (429 after many)."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization: Bearer <key>")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise refuse(request, "the Authorization header must be 'Bearer <key>'")
    principal = await authenticate(session, request.app.state.key_cache, key.strip())
    if principal is None:
        raise refuse(request, "the API key is not valid or has been revoked")
    request.state.principal = principal
    return principal


async def check_partner_active(session: AsyncSession, principal: Principal) -> None:
    """403 unless the principal's partner is active (and holds it so while this writes)."""
    # FOR SHARE: a status change waits for this write to commit, and this write for it,
    # so no write lands after the partner was suspended.
    status = await session.scalar(
        select(Partner.status).where(Partner.id == principal.partner_id).with_for_update(read=True)
    )
    if status != PartnerStatus.active:
        raise Forbidden(
            f"this partner is {status or 'unknown'}; only an active partner may make changes"
        )


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only the given roles (403 for the others).

    A partner key writes (any method but GET, HEAD, OPTIONS) only while its partner is active.
    """
    allowed = frozenset(roles)

    async def _check(request: Request, session: Session) -> Principal:
        # Called, not declared as a dependency: one level less for FastAPI to solve on
        # every request, and nothing else depends on it.
        principal = await current_principal(request, session)
        if principal.role not in allowed:
            names = ", ".join(sorted(allowed))
            raise Forbidden(f"this action needs one of these roles: {names}")
        if principal.role == Role.partner and request.method not in SAFE_METHODS:
            await check_partner_active(session, principal)
        return principal

    return _check


Admin = Annotated[Principal, Depends(require(Role.admin))]
Finance = Annotated[Principal, Depends(require(Role.admin, Role.finance))]
AdminOrPartner = Annotated[Principal, Depends(require(Role.admin, Role.partner))]
# Called as it is where FastAPI does not solve dependencies (service.kit.leanroute).
merchant_check = require(Role.admin, Role.merchant)
Merchant = Annotated[Principal, Depends(merchant_check)]
Reader = Annotated[
    Principal, Depends(require(Role.admin, Role.finance, Role.merchant, Role.partner))
]
FinanceOrPartner = Annotated[Principal, Depends(require(Role.admin, Role.finance, Role.partner))]
AdminMerchantPartner = Annotated[
    Principal, Depends(require(Role.admin, Role.merchant, Role.partner))
]
