from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from service.auth.deps import Admin, AdminOrPartner
from service.db import Session
from service.kit.pagination import Page, Pagination
from service.links import promo_codes, service
from service.links.schemas import (
    LinkCreate,
    LinkOut,
    LinkStatusName,
    LinkUpdate,
    PromoCodeCreate,
    PromoCodeOut,
    PromoCodeUpdate,
    PromoStatusName,
)
from service.openapi_responses import ERRORS, WRITE_ERRORS

router = APIRouter(prefix="/v1/links", tags=["links"])
promo_codes_router = APIRouter(prefix="/v1/promo-codes", tags=["promo codes"])


def _public_url(request: Request) -> str:
    return str(request.app.state.settings.public_url)


@router.post("", status_code=201, responses=WRITE_ERRORS)
async def create(
    body: LinkCreate, auth: AdminOrPartner, session: Session, request: Request
) -> LinkOut:
    """Create a link; without `code`, a random one is drawn. The answer's `url` is the one to share."""
    return service.to_out(await service.create_link(session, body, auth), _public_url(request))


@router.get("", responses=ERRORS)
async def list_(
    auth: AdminOrPartner,
    session: Session,
    page: Pagination,
    request: Request,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[LinkStatusName | None, Query()] = None,
) -> Page[LinkOut]:
    rows, cursor = await service.list_links(
        session, page, auth, program_id=program_id, partner_id=partner_id, status=status
    )
    base = _public_url(request)
    return Page(items=[service.to_out(r, base) for r in rows], next_cursor=cursor)


@router.get("/{link_id}", responses=ERRORS)
async def get(
    link_id: uuid.UUID, auth: AdminOrPartner, session: Session, request: Request
) -> LinkOut:
    return service.to_out(await service.get_link(session, link_id, auth), _public_url(request))


@router.patch("/{link_id}", responses=WRITE_ERRORS)
async def update(
    link_id: uuid.UUID, body: LinkUpdate, auth: AdminOrPartner, session: Session, request: Request
) -> LinkOut:
    """Change destination, params, expiry or status; every instance's redirect sees it at once."""
    link = await service.update_link(session, link_id, body, auth)
    return service.to_out(link, _public_url(request))


@promo_codes_router.post("", status_code=201, responses=WRITE_ERRORS)
async def create_promo_code(body: PromoCodeCreate, auth: Admin, session: Session) -> PromoCodeOut:
    return promo_codes.promo_to_out(await promo_codes.create_promo_code(session, body, auth))


@promo_codes_router.get("", responses=ERRORS)
async def list_promo_codes(
    auth: Admin,
    session: Session,
    page: Pagination,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[PromoStatusName | None, Query()] = None,
    code: Annotated[str | None, Query(max_length=64, description="matched ignoring case")] = None,
) -> Page[PromoCodeOut]:
    rows, cursor = await promo_codes.list_promo_codes(
        session, page, auth, program_id=program_id, partner_id=partner_id, status=status, code=code
    )
    return Page(items=[promo_codes.promo_to_out(r) for r in rows], next_cursor=cursor)


@promo_codes_router.get("/{promo_code_id}", responses=ERRORS)
async def get_promo_code(promo_code_id: uuid.UUID, auth: Admin, session: Session) -> PromoCodeOut:
    return promo_codes.promo_to_out(await promo_codes.get_promo_code(session, promo_code_id, auth))


@promo_codes_router.patch("/{promo_code_id}", responses=WRITE_ERRORS)
async def update_promo_code(
    promo_code_id: uuid.UUID, body: PromoCodeUpdate, auth: Admin, session: Session
) -> PromoCodeOut:
    return promo_codes.promo_to_out(
        await promo_codes.update_promo_code(session, promo_code_id, body, auth)
    )
