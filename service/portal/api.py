"""POST /v1/portal-links: a one-time sign-in link to the portal."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.auth.deps import Admin
from service.db import Session
from service.models import Partner, Role
from service.openapi_responses import WRITE_ERRORS
from service.portal import mail, sessions
from service.portal.schemas import PortalLinkCreate, PortalLinkOut

router = APIRouter(prefix="/v1/portal-links", tags=["portal"])


@router.post(
    "",
    status_code=201,
    responses={**WRITE_ERRORS, 503: {"description": "the mail server did not take the email"}},
)
async def create(
    body: PortalLinkCreate, auth: Admin, session: Session, request: Request
) -> PortalLinkOut:
    """A sign-in link for a partner (`partner_id`) or for `role` admin or finance; used once.

    With AFFILIATE_SMTP_URL set, a partner's link is also emailed to the partner (before the
    link is committed: a mail server that refuses it is a 503 and no link is kept).
    """
    settings = request.app.state.settings
    role = Role.partner if body.partner_id is not None else Role(body.role or "")
    link, url = await sessions.issue_link(
        session,
        role=role,
        partner_id=body.partner_id,
        by=auth,
        public_url=settings.public_url,
    )
    emailed_to = None
    if settings.smtp_url and body.partner_id is not None:
        partner = await session.get(Partner, body.partner_id)
        assert partner is not None
        await mail.send_link(settings, partner.email, partner.name, url)
        emailed_to = partner.email
    return PortalLinkOut(url=url, expires_at=link.expires_at, emailed_to=emailed_to)
