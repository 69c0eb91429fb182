from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from service.auth.deps import Admin, AdminOrPartner
from service.db import Session
from service.errors import Forbidden
from service.kit.pagination import Page, Pagination
from service.openapi_responses import ERRORS, WRITE_ERRORS
from service.partnering.disputes import service
from service.partnering.disputes.schemas import DisputeCreate, DisputeOut, DisputeResolution, Status

router = APIRouter(prefix="/v1/disputes", tags=["disputes"])

RESOLVE = """Accept or decline an open dispute. Accepting `missing` attributes the stored
unattributed conversion of the order to the partner (it earns by the terms in force at its
time); accepting `declined` approves the partner's held conversion. A dispute whose order
was never recorded can only be declined (409 otherwise)."""


@router.post("", status_code=201, responses=WRITE_ERRORS)
async def create(body: DisputeCreate, auth: AdminOrPartner, session: Session) -> DisputeOut:
    if auth.partner_id is None:
        raise Forbidden("disputes are opened with the partner's own key")
    return service.to_out(await service.create_dispute(session, body, auth))


@router.get("", responses=ERRORS)
async def list_(
    auth: AdminOrPartner,
    session: Session,
    page: Pagination,
    status: Annotated[Status | None, Query()] = None,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[DisputeOut]:
    rows, cursor = await service.list_disputes(session, page, auth, status, program_id)
    return Page(items=[service.to_out(r) for r in rows], next_cursor=cursor)


@router.get("/{dispute_id}", responses=ERRORS)
async def get(dispute_id: uuid.UUID, auth: AdminOrPartner, session: Session) -> DisputeOut:
    return service.to_out(await service.get_dispute(session, dispute_id, auth))


@router.post("/{dispute_id}/resolve", responses=WRITE_ERRORS, description=RESOLVE)
async def resolve(
    dispute_id: uuid.UUID, body: DisputeResolution, auth: Admin, session: Session
) -> DisputeOut:
    row = await service.resolve_dispute(session, dispute_id, body.outcome, body.reason, auth)
    return service.to_out(row)
