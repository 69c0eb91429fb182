"""The program manager's pages: programs, then per program its KPIs against the period
before, partners ranked by revenue with their quality figures, and the review queue."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response

from service.conversions import repository as conversions
from service.conversions import review
from service.conversions.api import conversions_out
from service.conversions.schemas import ReviewDecision
from service.db import Session
from service.errors import NotFound, ValidationFailed
from service.fraud import report as quality
from service.kit.pagination import Pagination
from service.kit.time import utc_now
from service.models import Program, Role
from service.portal import web
from service.portal.web import HEADERS, Form, Manager, render
from service.programs import repository as programs
from service.reports import service as reports
from service.reports.schemas import Metrics

pages = web.router()
PERIOD = timedelta(days=30)
DECISIONS = {"approve": "approved", "reject": "rejected"}

web.register("Programs", "/manage", [Role.admin], 10)

KPI_ROWS = (
    ("clicks", "Clicks", "number"),
    ("leads", "Leads", "number"),
    ("sales", "Sales", "number"),
    ("conversion_rate", "Conversion rate", "percent"),
    ("revenue", "Revenue", "money"),
    ("commission", "Commission", "money"),
    ("epc", "EPC", "money"),
)


async def _program(session: Session, who: web.SignedIn, program_id: uuid.UUID) -> Program:
    program = await programs.get(session, who.principal, program_id)
    if program is None:
        raise NotFound(f"program {program_id} does not exist")
    return program


def change(now: Any, before: Any) -> str | None:
    """now / before - 1 as a ratio string; None when before is zero or either is missing."""
    if now is None or before is None:
        return None
    a, b = Decimal(str(now)), Decimal(str(before))
    if b == 0:
        return None
    return f"{(a / b - 1).quantize(Decimal('0.0001'))}"


@pages.get("/manage")
async def programs_page(
    request: Request, who: Manager, session: Session, page: Pagination
) -> Response:
    """Every program, first."""
    rows, cursor = await programs.page(session, who.principal, page)
    return render(request, "manage/programs.html", who, programs=rows, next_cursor=cursor)


@pages.get("/manage/programs/{program_id}")
async def program_page(
    program_id: uuid.UUID, request: Request, who: Manager, session: Session
) -> Response:
    """KPIs of the last 30 days against the 30 before, and partners ranked by revenue."""
    program = await _program(session, who, program_id)
    end = utc_now()
    start = end - PERIOD

    def params(a: Any, b: Any, group: Any) -> reports.Params:
        return reports.Params(a, b, program.id, None, None, group, None)

    now = await reports.performance(session, who.principal, params(start, end, "program"))
    before = await reports.performance(
        session, who.principal, params(start - PERIOD, start, "program")
    )
    by_partner = await reports.performance(session, who.principal, params(start, end, "partner"))
    fraud = await quality.quality(session, who.principal, start, end, program.id, None)
    cur = program.currency

    def totals(r: Any) -> Metrics | None:
        return next((t for t in r.totals if t.currency == cur), None)

    t_now, t_before = totals(now), totals(before)
    kpis = []
    for name, label, kind in KPI_ROWS:
        a = getattr(t_now, name) if t_now else None
        b = getattr(t_before, name) if t_before else None
        kpis.append({"label": label, "kind": kind, "now": a, "before": b, "change": change(a, b)})
    ranked = sorted(
        (r for r in by_partner.rows if r.currency == cur),
        key=lambda r: Decimal(r.revenue),
        reverse=True,
    )
    return render(
        request,
        "manage/program.html",
        who,
        program=program,
        kpis=kpis,
        report=now,
        previous=before,
        ranked=ranked,
        quality={q.partner_id: q for q in fraud.rows},
    )


@pages.get("/manage/programs/{program_id}/review")
async def review_page(
    program_id: uuid.UUID,
    request: Request,
    who: Manager,
    session: Session,
    page: Pagination,
    done: Annotated[str | None, Query(pattern="^(approved|rejected)$")] = None,
) -> Response:
    """Conversions held for review (`GET /v1/conversions?status=review`), oldest first."""
    program = await _program(session, who, program_id)
    rows, cursor = await conversions.page(
        session, who.principal, page, program_id=program.id, status="review"
    )
    return render(
        request,
        "manage/review.html",
        who,
        program=program,
        conversions=await conversions_out(session, who.principal, rows),
        next_cursor=cursor,
        done=done,
    )


@pages.post("/manage/conversions/{conversion_id}/decision")
async def decide(
    conversion_id: uuid.UUID, who: Manager, session: Session, values: Form
) -> Response:
    """Approve or reject a held conversion, with the reason the partner sees."""
    action = values.get("action")
    if action is None or action not in DECISIONS:
        raise ValidationFailed([{"field": "action", "message": "must be approve or reject"}])
    body = web.parse(ReviewDecision, {"reason": values.get("reason", "")})
    row = await review.decide(session, conversion_id, action, body.reason, who.principal)
    return RedirectResponse(
        f"/portal/manage/programs/{row.program_id}/review?done={DECISIONS[action]}",
        status_code=303,
        headers=HEADERS,
    )
