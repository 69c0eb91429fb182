"""Applications: the public form, and an admin's approval (partner, agreement, first link)
or rejection."""

from __future__ import annotations

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.agreements import service as agreements
from service.agreements.schemas import AgreementCreate
from service.auth.keys import Principal
from service.errors import Conflict, NotFound, field_error
from service.events import announce
from service.kit.ids import new_id
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.links import service as links
from service.links.schemas import LinkCreate
from service.models import Application, ApplicationStatus, Program
from service.partnering.applications import repository
from service.partnering.applications.schemas import (
    ApplicationApproval,
    ApplicationCreate,
    ApplicationOut,
)
from service.partners import service as partners
from service.partners.schemas import PartnerCreate
from service.tracking.urls import check_http_url


def to_out(row: Application) -> ApplicationOut:
    """The API shape of an application."""
    return ApplicationOut(
        id=row.id,
        program_id=row.program_id,
        name=row.name,
        email=row.email,
        website=row.website,
        message=row.message,
        status=row.status,  # type: ignore[arg-type]
        reason=row.reason,
        partner_id=row.partner_id,
        agreement_id=row.agreement_id,
        link_id=row.link_id,
        decided_at=row.decided_at,
        created_at=row.created_at,
    )


async def create_application(
    session: AsyncSession, program_id: uuid.UUID, body: ApplicationCreate
) -> Application:
    """Store an application from the public form; a second pending one of an email is a 409."""
    program = await session.get(Program, program_id)
    if program is None:
        raise NotFound(f"program {program_id} does not exist")
    if body.website is not None:
        problem = check_http_url(body.website)
        if problem:
            raise field_error("website", problem)
    email = str(body.email).lower()
    # The partial unique index decides between two submissions at once.
    row = await session.scalar(
        insert(Application)
        .values(
            id=new_id(),
            program_id=program.id,
            name=body.name,
            email=email,
            website=body.website,
            message=body.message,
            status=ApplicationStatus.pending,
        )
        .on_conflict_do_nothing(
            index_elements=["program_id", "email"], index_where=Application.status == "pending"
        )
        .returning(Application)
    )
    if row is None:
        raise Conflict(
            "an application with this email is already pending in this program",
            errors=[{"field": "email", "message": "already has a pending application"}],
        )
    audit.record(session, None, "application.created", "application", row.id, {"email": email})
    await announce.application(session, row)
    return row


async def _pending(session: AsyncSession, application_id: uuid.UUID, by: Principal) -> Application:
    row = await repository.get(session, by, application_id, lock=True)
    if row is None:
        raise NotFound(f"application {application_id} does not exist")
    if row.status != ApplicationStatus.pending:
        raise Conflict(f"the application is already {row.status}")
    return row


async def approve_application(
    session: AsyncSession, application_id: uuid.UUID, body: ApplicationApproval, by: Principal
) -> Application:
    """Create the partner, its agreement with the terms and a first link, in this transaction."""
    row = await _pending(session, application_id, by)
    partner = await partners.create_partner(
        session, PartnerCreate(name=row.name, email=row.email, status="active"), by
    )
    agreement = await agreements.create_agreement(
        session, partner.id, AgreementCreate(program_id=row.program_id, terms=body.terms), by
    )
    link = await links.create_link(
        session, LinkCreate(program_id=row.program_id, partner_id=partner.id), by
    )
    row.status = ApplicationStatus.approved
    row.partner_id = partner.id
    row.agreement_id = agreement.id
    row.link_id = link.id
    row.reason = body.reason
    row.decided_at = utc_now()
    await session.flush()
    audit.record(
        session,
        by,
        "application.approved",
        "application",
        row.id,
        {"partner_id": partner.id, "agreement_id": agreement.id, "link_id": link.id},
    )
    return row


async def reject_application(
    session: AsyncSession, application_id: uuid.UUID, reason: str, by: Principal
) -> Application:
    """Reject a pending application, keeping the reason."""
    row = await _pending(session, application_id, by)
    row.status = ApplicationStatus.rejected
    row.reason = reason
    row.decided_at = utc_now()
    await session.flush()
    audit.record(session, by, "application.rejected", "application", row.id, {"reason": reason})
    return row


async def get_application(
    session: AsyncSession, application_id: uuid.UUID, by: Principal
) -> Application:
    """An application the key may read, or NotFound."""
    row = await repository.get(session, by, application_id)
    if row is None:
        raise NotFound(f"application {application_id} does not exist")
    return row


async def list_applications(
    session: AsyncSession,
    params: PageParams,
    by: Principal,
    status: str | None,
    program_id: uuid.UUID | None,
) -> tuple[list[Application], str | None]:
    """A page of the applications the key may read."""
    return await repository.page(session, by, params, status=status, program_id=program_id)
