from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from service.auth.deps import Admin, AdminMerchantPartner
from service.db import Session
from service.kit import csvout
from service.kit.pagination import Page, Pagination
from service.openapi_responses import ERRORS, WRITE_ERRORS
from service.partnering.kpis import service
from service.partnering.kpis.schemas import (
    KpiReport,
    KpiTargetCreate,
    KpiTargetOut,
    KpiTargetUpdate,
    Period,
)

router = APIRouter(prefix="/v1/kpi-targets", tags=["kpi-targets"])
report_router = APIRouter(prefix="/v1/reports", tags=["reports"])

REPORT = """Per metric: target, actual, attainment = actual / target, previous (the period
before), change = actual / previous - 1, projected (actual scaled from the elapsed part of
the period to all of it; a rate is its own projection) and on_track = projected >= target.
Periods are calendar months or quarters in the program's time zone. clicks are human clicks
(hourly rollups); sales, revenue (net of refunds) and new_customers (first attributed sales)
count attributed conversions not rejected; conversion_rate = (leads + sales) / clicks;
commission is the ledger's entries of the period's months, bounties and adjustments
included. Counts are integers, money strings, ratios decimal strings (4 places); null where
a figure would divide by zero or there is no target. A partner key sees its own figures.
`format=csv` (or `Accept: text/csv`) answers CSV."""


@router.post("", status_code=201, responses=WRITE_ERRORS)
async def create(body: KpiTargetCreate, auth: Admin, session: Session) -> KpiTargetOut:
    row, program = await service.create_target(session, body, auth)
    return service.to_out(row, program.currency)


@router.get("", responses=ERRORS)
async def list_(
    auth: Admin,
    session: Session,
    page: Pagination,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[KpiTargetOut]:
    rows, cursor = await service.list_targets(session, page, auth, program_id, partner_id)
    return Page(items=[service.to_out(r, c) for r, c in rows], next_cursor=cursor)


@router.patch("/{target_id}", responses=WRITE_ERRORS)
async def update(
    target_id: uuid.UUID, body: KpiTargetUpdate, auth: Admin, session: Session
) -> KpiTargetOut:
    row, program = await service.update_target(session, target_id, body.targets, auth)
    return service.to_out(row, program.currency)


@report_router.get(
    "/kpis",
    response_model=KpiReport,
    description=REPORT,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}, "description": "JSON or CSV"}},
)
async def kpis(
    request: Request,
    auth: AdminMerchantPartner,
    session: Session,
    program_id: Annotated[uuid.UUID, Query()],
    start: Annotated[date, Query(description="first day of the month or quarter")],
    period: Annotated[Period, Query()] = "month",
    partner_id: Annotated[uuid.UUID | None, Query(description="null: the whole program")] = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Any:
    """A program's (or partner's) KPIs for a month or quarter against its targets."""
    report = await service.report(session, auth, program_id, partner_id, period, start)
    if csvout.wanted(request, format):
        return csvout.response(service.to_csv(report), "kpis.csv")
    return report
