"""The Annotated auth dependencies every /v1 route declares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from service.auth.keys import Principal, authenticate
from service.db import Session
from service.errors import Forbidden, Unauthorized
from service.models import Role


async def current_principal(request: Request, session: Session) -> Principal:
    """The caller, from `Authorization: Bearer <key>`; 401 otherwise."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization: Bearer <key>")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    principal = await authenticate(session, key.strip())
    if principal is None:
        raise Unauthorized("the API key is not valid or has been revoked")
    request.state.principal = principal
    return principal


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only the given roles (403 for the others)."""
    allowed = frozenset(roles)

    async def _check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(allowed))
            raise Forbidden(f"this action needs one of these roles: {names}")
        return principal

    return _check


Admin = Annotated[Principal, Depends(require(Role.admin))]
Finance = Annotated[Principal, Depends(require(Role.admin, Role.finance))]
AdminOrPartner = Annotated[Principal, Depends(require(Role.admin, Role.partner))]
AdminOrMerchant = Annotated[Principal, Depends(require(Role.admin, Role.merchant))]
Merchant = Annotated[Principal, Depends(require(Role.admin, Role.merchant))]
Reader = Annotated[
    Principal, Depends(require(Role.admin, Role.finance, Role.merchant, Role.partner))
]
FinanceOrPartner = Annotated[Principal, Depends(require(Role.admin, Role.finance, Role.partner))]
AdminMerchantPartner = Annotated[
    Principal, Depends(require(Role.admin, Role.merchant, Role.partner))
]
