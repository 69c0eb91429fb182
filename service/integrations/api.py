from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from service.auth.deps import Admin
from service.conversions.api import context
from service.db import Session
from service.errors import problem_response
from service.integrations import hooks, repository, service
from service.integrations.schemas import (
    DeliveryOut,
    HookAnswer,
    IntegrationCreate,
    IntegrationOut,
    IntegrationUpdate,
    ProviderName,
    SecretRotation,
    delivery_out,
    integration_out,
)
from service.kit.pagination import Page, Pagination
from service.openapi_responses import ERRORS, WRITE_ERRORS, _problem

router = APIRouter(tags=["integrations"])
# Mounted apart from the /v1 routes (app.py): no app-wide dependency may read the body
# before its signature is checked.
hooks_router = APIRouter(tags=["integrations"])


def _public_url(request: Request) -> str:
    return str(request.app.state.settings.public_url)


@router.post("/v1/integrations", status_code=201, responses=WRITE_ERRORS)
async def create(
    body: IntegrationCreate, auth: Admin, session: Session, request: Request
) -> IntegrationOut:
    """Connect a shop; point its webhooks at the answer's `webhook_url`."""
    row = await service.create(session, body, auth, request.app.state.settings)
    return integration_out(row, _public_url(request))


@router.get("/v1/integrations", responses=ERRORS)
async def list_(
    auth: Admin,
    session: Session,
    page: Pagination,
    request: Request,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    provider: Annotated[ProviderName | None, Query()] = None,
) -> Page[IntegrationOut]:
    rows, cursor = await repository.page(
        session, auth, page, program_id=program_id, provider=provider
    )
    url = _public_url(request)
    return Page(items=[integration_out(r, url) for r in rows], next_cursor=cursor)


@router.get("/v1/integrations/{integration_id}", responses=ERRORS)
async def get(
    integration_id: uuid.UUID, auth: Admin, session: Session, request: Request
) -> IntegrationOut:
    row = await service.get(session, integration_id, auth)
    return integration_out(row, _public_url(request))


@router.patch("/v1/integrations/{integration_id}", responses=WRITE_ERRORS)
async def update(
    integration_id: uuid.UUID,
    body: IntegrationUpdate,
    auth: Admin,
    session: Session,
    request: Request,
) -> IntegrationOut:
    """Enable or disable (a disabled one's events are kept as ignored, to replay later)."""
    row = await service.update(session, integration_id, body, auth)
    return integration_out(row, _public_url(request))


@router.post("/v1/integrations/{integration_id}/rotate-secret", responses=WRITE_ERRORS)
async def rotate_secret(
    integration_id: uuid.UUID,
    body: SecretRotation,
    auth: Admin,
    session: Session,
    request: Request,
) -> IntegrationOut:
    """Set a new signing secret; the old one verifies for `previous_valid_hours` more."""
    row = await service.rotate_secret(
        session, integration_id, body, auth, request.app.state.settings
    )
    return integration_out(row, _public_url(request))


@router.get("/v1/integrations/{integration_id}/deliveries", responses=ERRORS)
async def deliveries(
    integration_id: uuid.UUID,
    auth: Admin,
    session: Session,
    page: Pagination,
    status: Annotated[Literal["processed", "ignored", "failed"] | None, Query()] = None,
) -> Page[DeliveryOut]:
    """The integration's inbox: every verified event, oldest first."""
    row = await service.get(session, integration_id, auth)
    rows, cursor = await repository.deliveries(session, row.id, page, status)
    return Page(items=[delivery_out(r) for r in rows], next_cursor=cursor)


@router.post(
    "/v1/integrations/{integration_id}/deliveries/{delivery_id}/replay",
    responses=WRITE_ERRORS,
)
async def replay(
    integration_id: uuid.UUID,
    delivery_id: uuid.UUID,
    auth: Admin,
    session: Session,
    request: Request,
) -> DeliveryOut:
    """Carry out a stored event again, e.g. a refund that arrived before its sale."""
    row = await hooks.replay(session, integration_id, delivery_id, auth, context(request))
    return delivery_out(row)


@hooks_router.post(
    "/hooks/{provider}/{integration_id}",
    response_model=HookAnswer,
    responses={
        400: _problem("the signature is good but the body is not JSON (kept as failed)"),
        401: _problem("missing or wrong signature: nothing is kept"),
        404: _problem("no integration of this provider at this URL"),
        413: ERRORS[413],
        422: _problem("the URL names no provider, or its id is not a UUID"),
    },
)
async def hook(
    provider: ProviderName, integration_id: uuid.UUID, session: Session, request: Request
) -> Response | HookAnswer:
    """A shop's own webhook, authenticated by the shop's signature over the raw body.

    Every verified event is answered 200 (`processed`, `ignored` or `failed` with the
    reason), so the shop never disables the hook; see the integration's deliveries.
    """
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    got = await hooks.receive(
        session,
        provider,
        integration_id,
        headers,
        body,
        context(request),
        request.app.state.settings,
    )
    outcome = got.outcome
    if got.not_json:
        assert got.delivery is not None
        return problem_response(
            400,
            outcome.reason or "the body is not JSON",
            slug="payload-invalid",
            title="Bad request",
            extra={"delivery_id": str(got.delivery.id)},
        )
    return HookAnswer(
        status=outcome.status,  # type: ignore[arg-type]
        reason=outcome.reason,
        conversion_id=outcome.conversion_id,
    )
