from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from service.agreements import service, simulate
from service.agreements.schemas import (
    AgreementCreate,
    AgreementOut,
    SimulationOut,
    SimulationRequest,
    Termination,
    VersionCreate,
)
from service.auth.deps import Admin, AdminOrPartner
from service.db import Session
from service.kit.pagination import Page, Pagination
from service.openapi_responses import ERRORS, WRITE_ERRORS

router = APIRouter(tags=["agreements"])


@router.post("/v1/partners/{partner_id}/agreements", status_code=201, responses=WRITE_ERRORS)
async def create(
    partner_id: uuid.UUID, body: AgreementCreate, auth: Admin, session: Session
) -> AgreementOut:
    agreement = await service.create_agreement(session, partner_id, body, auth)
    return await service.to_out(session, agreement)


@router.get("/v1/agreements", responses=ERRORS)
async def list_(
    auth: AdminOrPartner,
    session: Session,
    page: Pagination,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[AgreementOut]:
    rows, cursor = await service.list_agreements(session, page, auth, partner_id, program_id)
    return Page(items=await service.to_outs(session, rows), next_cursor=cursor)


@router.get("/v1/agreements/{agreement_id}", responses=ERRORS)
async def get(agreement_id: uuid.UUID, auth: AdminOrPartner, session: Session) -> AgreementOut:
    return await service.to_out(session, await service.get_agreement(session, agreement_id, auth))


@router.post("/v1/agreements/{agreement_id}/versions", status_code=201, responses=WRITE_ERRORS)
async def add_version(
    agreement_id: uuid.UUID, body: VersionCreate, auth: Admin, session: Session
) -> AgreementOut:
    agreement = await service.add_version(session, agreement_id, body, auth)
    return await service.to_out(session, agreement)


@router.post("/v1/agreements/{agreement_id}/terminate", responses=WRITE_ERRORS)
async def terminate(
    agreement_id: uuid.UUID, body: Termination, auth: Admin, session: Session
) -> AgreementOut:
    agreement = await service.terminate(session, agreement_id, body, auth)
    return await service.to_out(session, agreement)


@router.post("/v1/agreements/{agreement_id}/simulate", responses=ERRORS)
async def simulate_terms(
    agreement_id: uuid.UUID, body: SimulationRequest, auth: Admin, session: Session
) -> SimulationOut:
    """What the partner's conversions of a period would earn under proposed terms."""
    return await simulate.simulate_terms(session, agreement_id, body, auth)
