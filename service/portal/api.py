"""POST /v1/portal-links: a one-time sign-in link to the portal."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.auth.deps import Admin
from service.db import Session
from service.models import Role
from service.openapi_responses import WRITE_ERRORS
from service.portal import sessions
from service.portal.schemas import PortalLinkCreate, PortalLinkOut

router = APIRouter(prefix="/v1/portal-links", tags=["portal"])


@router.post("", status_code=201, responses=WRITE_ERRORS)
async def create(
    body: PortalLinkCreate, auth: Admin, session: Session, request: Request
) -> PortalLinkOut:
    """A sign-in link for a partner (`partner_id`) or for `role` admin or finance; used once."""
    role = Role.partner if body.partner_id is not None else Role(body.role or "")
    link, url = await sessions.issue_link(
        session,
        role=role,
        partner_id=body.partner_id,
        by=auth,
        public_url=request.app.state.settings.public_url,
    )
    return PortalLinkOut(url=url, expires_at=link.expires_at)
