from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from service.auth.deps import Admin, client_address
from service.db import Session
from service.errors import TooManyRequests
from service.kit.pagination import Page, Pagination
from service.openapi_responses import ERRORS, WRITE_ERRORS
from service.partnering.applications import service
from service.partnering.applications.schemas import (
    ApplicationApproval,
    ApplicationCreate,
    ApplicationCreated,
    ApplicationOut,
    ApplicationRejection,
    Status,
)

public_router = APIRouter(prefix="/v1/programs", tags=["applications"])
router = APIRouter(prefix="/v1/applications", tags=["applications"])


def rate_limited(request: Request) -> None:
    """A 429 with Retry-After once the caller's address has applied too often."""
    wait = request.app.state.application_limiter.hit(client_address(request))
    if wait is not None:
        raise TooManyRequests("too many applications from this address", wait)


RateLimited = Annotated[None, Depends(rate_limited)]


@public_router.post(
    "/{program_id}/applications",
    status_code=201,
    responses=WRITE_ERRORS,
    description="Apply to join a program. Takes no key; limited per client address.",
)
async def apply(
    program_id: uuid.UUID, body: ApplicationCreate, _: RateLimited, session: Session
) -> ApplicationCreated:
    row = await service.create_application(session, program_id, body)
    return ApplicationCreated(id=row.id, status=row.status)  # type: ignore[arg-type]


@router.get("", responses=ERRORS)
async def list_(
    auth: Admin,
    session: Session,
    page: Pagination,
    status: Annotated[Status | None, Query()] = None,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[ApplicationOut]:
    rows, cursor = await service.list_applications(session, page, auth, status, program_id)
    return Page(items=[service.to_out(r) for r in rows], next_cursor=cursor)


@router.get("/{application_id}", responses=ERRORS)
async def get(application_id: uuid.UUID, auth: Admin, session: Session) -> ApplicationOut:
    return service.to_out(await service.get_application(session, application_id, auth))


@router.post("/{application_id}/approve", responses=WRITE_ERRORS)
async def approve(
    application_id: uuid.UUID, body: ApplicationApproval, auth: Admin, session: Session
) -> ApplicationOut:
    return service.to_out(await service.approve_application(session, application_id, body, auth))


@router.post("/{application_id}/reject", responses=WRITE_ERRORS)
async def reject(
    application_id: uuid.UUID, body: ApplicationRejection, auth: Admin, session: Session
) -> ApplicationOut:
    return service.to_out(
        await service.reject_application(session, application_id, body.reason, auth)
    )
