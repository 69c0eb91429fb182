from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from service.auth.deps import Admin, AdminOrPartner
from service.db import Session
from service.events import postbacks, service
from service.events import repository as repo
from service.events.schemas import (
    DeliveryState,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
    EndpointUpdate,
    EventDeliveryOut,
    PostbackCreate,
    PostbackCreated,
    PostbackOut,
    PostbackUpdate,
    SecretRotated,
)
from service.kit.pagination import Page, Pagination
from service.openapi_responses import ERRORS, WRITE_ERRORS

router = APIRouter(tags=["events"])

StatusFilter = Annotated[DeliveryState | None, Query()]


@router.post("/v1/webhook-endpoints", status_code=201, responses=WRITE_ERRORS)
async def create_endpoint(
    body: EndpointCreate, auth: Admin, session: Session, request: Request
) -> EndpointCreated:
    """A receiver of signed events; the answer's `secret` is shown only here."""
    return await service.create_endpoint(session, body, auth, request.app.state.settings)


@router.get("/v1/webhook-endpoints", responses=ERRORS)
async def list_endpoints(
    auth: Admin,
    session: Session,
    page: Pagination,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[EndpointOut]:
    rows, cursor = await repo.endpoints(session, auth, page, program_id)
    return Page(items=[service.endpoint_out(r) for r in rows], next_cursor=cursor)


@router.get("/v1/webhook-endpoints/{endpoint_id}", responses=ERRORS)
async def get_endpoint(endpoint_id: uuid.UUID, auth: Admin, session: Session) -> EndpointOut:
    return service.endpoint_out(await service.get_endpoint(session, endpoint_id, auth))


@router.patch("/v1/webhook-endpoints/{endpoint_id}", responses=WRITE_ERRORS)
async def update_endpoint(
    endpoint_id: uuid.UUID, body: EndpointUpdate, auth: Admin, session: Session, request: Request
) -> EndpointOut:
    """Change url, events, status (enabling forgets past failures) or description."""
    row = await service.update_endpoint(
        session, endpoint_id, body, auth, request.app.state.settings
    )
    return service.endpoint_out(row)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", responses=WRITE_ERRORS)
async def rotate_endpoint_secret(
    endpoint_id: uuid.UUID, auth: Admin, session: Session, request: Request
) -> SecretRotated:
    """A new secret; for 24 h the old one signs too (two v1 signatures per delivery)."""
    return await service.rotate_endpoint_secret(
        session, endpoint_id, auth, request.app.state.settings
    )


@router.get("/v1/webhook-endpoints/{endpoint_id}/deliveries", responses=ERRORS)
async def endpoint_deliveries(
    endpoint_id: uuid.UUID,
    auth: Admin,
    session: Session,
    page: Pagination,
    status: StatusFilter = None,
) -> Page[EventDeliveryOut]:
    """The endpoint's deliveries, oldest first, each with its attempts."""
    row = await service.get_endpoint(session, endpoint_id, auth)
    items, cursor = await service.deliveries_page(session, page, status, endpoint_id=row.id)
    return Page(items=items, next_cursor=cursor)


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry", responses=WRITE_ERRORS
)
async def retry_endpoint_delivery(
    endpoint_id: uuid.UUID, delivery_id: uuid.UUID, auth: Admin, session: Session
) -> EventDeliveryOut:
    """Send a delivery again now (a dead one included)."""
    row = await service.get_endpoint(session, endpoint_id, auth)
    return await service.retry_delivery(session, delivery_id, auth, endpoint_id=row.id)


@router.post("/v1/partners/{partner_id}/postbacks", status_code=201, responses=WRITE_ERRORS)
async def create_postback(
    partner_id: uuid.UUID,
    body: PostbackCreate,
    auth: AdminOrPartner,
    session: Session,
    request: Request,
) -> PostbackCreated:
    """A URL with macros fetched (GET) on the partner's conversion events."""
    return await postbacks.create(session, partner_id, body, auth, request.app.state.settings)


@router.get("/v1/partners/{partner_id}/postbacks", responses=ERRORS)
async def list_postbacks(
    partner_id: uuid.UUID, auth: AdminOrPartner, session: Session, page: Pagination
) -> Page[PostbackOut]:
    rows, cursor = await postbacks.page(session, partner_id, page, auth)
    return Page(items=[postbacks.postback_out(r) for r in rows], next_cursor=cursor)


@router.get("/v1/partners/{partner_id}/postbacks/{postback_id}", responses=ERRORS)
async def get_postback(
    partner_id: uuid.UUID, postback_id: uuid.UUID, auth: AdminOrPartner, session: Session
) -> PostbackOut:
    return postbacks.postback_out(await postbacks.get(session, partner_id, postback_id, auth))


@router.patch("/v1/partners/{partner_id}/postbacks/{postback_id}", responses=WRITE_ERRORS)
async def update_postback(
    partner_id: uuid.UUID,
    postback_id: uuid.UUID,
    body: PostbackUpdate,
    auth: AdminOrPartner,
    session: Session,
    request: Request,
) -> PostbackOut:
    row = await postbacks.update(
        session, partner_id, postback_id, body, auth, request.app.state.settings
    )
    return postbacks.postback_out(row)


@router.post(
    "/v1/partners/{partner_id}/postbacks/{postback_id}/rotate-secret", responses=WRITE_ERRORS
)
async def rotate_postback_secret(
    partner_id: uuid.UUID,
    postback_id: uuid.UUID,
    auth: AdminOrPartner,
    session: Session,
    request: Request,
) -> SecretRotated:
    return await postbacks.rotate_secret(
        session, partner_id, postback_id, auth, request.app.state.settings
    )


@router.get("/v1/partners/{partner_id}/postbacks/{postback_id}/deliveries", responses=ERRORS)
async def postback_deliveries(
    partner_id: uuid.UUID,
    postback_id: uuid.UUID,
    auth: AdminOrPartner,
    session: Session,
    page: Pagination,
    status: StatusFilter = None,
) -> Page[EventDeliveryOut]:
    row = await postbacks.get(session, partner_id, postback_id, auth)
    items, cursor = await service.deliveries_page(session, page, status, postback_id=row.id)
    return Page(items=items, next_cursor=cursor)


@router.post(
    "/v1/partners/{partner_id}/postbacks/{postback_id}/deliveries/{delivery_id}/retry",
    responses=WRITE_ERRORS,
)
async def retry_postback_delivery(
    partner_id: uuid.UUID,
    postback_id: uuid.UUID,
    delivery_id: uuid.UUID,
    auth: AdminOrPartner,
    session: Session,
) -> EventDeliveryOut:
    row = await postbacks.get(session, partner_id, postback_id, auth)
    return await service.retry_delivery(session, delivery_id, auth, postback_id=row.id)
