from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from service.auth.deps import Admin
from service.db import Session
from service.kit.pagination import Page, Pagination
from service.openapi_responses import ERRORS, WRITE_ERRORS
from service.partners import service
from service.partners.schemas import PartnerCreate, PartnerOut, PartnerUpdate, Status

router = APIRouter(prefix="/v1/partners", tags=["partners"])


@router.post("", status_code=201, responses=WRITE_ERRORS)
async def create(body: PartnerCreate, auth: Admin, session: Session) -> PartnerOut:
    return service.to_out(await service.create_partner(session, body, auth))


@router.get("", responses=ERRORS)
async def list_(
    auth: Admin,
    session: Session,
    page: Pagination,
    status: Annotated[Status | None, Query()] = None,
) -> Page[PartnerOut]:
    rows, cursor = await service.list_partners(session, page, auth, status)
    return Page(items=[service.to_out(r) for r in rows], next_cursor=cursor)


@router.get("/{partner_id}", responses=ERRORS)
async def get(partner_id: uuid.UUID, auth: Admin, session: Session) -> PartnerOut:
    return service.to_out(await service.get_partner(session, partner_id, auth))


@router.patch("/{partner_id}", responses=WRITE_ERRORS)
async def update(
    partner_id: uuid.UUID, body: PartnerUpdate, auth: Admin, session: Session
) -> PartnerOut:
    return service.to_out(await service.update_partner(session, partner_id, body, auth))
