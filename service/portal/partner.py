"""The partner's pages: overview, links, conversions, payouts. Every figure is what the
partner's key reads from the API, through the same service functions."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response

from service.conversions import repository as conversions
from service.conversions.api import conversions_out
from service.db import Session
from service.errors import NotFound
from service.kit import csvout
from service.kit.pagination import PageParams, Pagination
from service.links import service as links
from service.links.schemas import LinkCreate
from service.models import Program, Role
from service.payouts import exports, settlement
from service.payouts.balances import balances
from service.portal import charts, web
from service.portal.web import HEADERS, Form, Partner, render
from service.programs import repository as programs
from service.reports import service as reports
from service.reports.schemas import Performance

pages = web.router()
ALL = PageParams(limit=200, after=None)
ROLE = [Role.partner]

web.register("Overview", "/partner", ROLE, 10)
web.register("Links", "/partner/links", ROLE, 20)
web.register("Conversions", "/partner/conversions", ROLE, 30)
web.register("Payouts", "/partner/payouts", ROLE, 40)


async def _programs(session: Session, who: web.SignedIn) -> list[Program]:
    rows, _ = await programs.page(session, who.principal, ALL)
    return rows


def _chosen(rows: list[Program], program_id: uuid.UUID | None) -> Program | None:
    if program_id is None:
        return rows[0] if rows else None
    for p in rows:
        if p.id == program_id:
            return p
    raise NotFound(f"program {program_id} does not exist")


def days_of(report: Performance, zone: str) -> list[dict[str, Any]]:
    """Every day of the report's range in the zone, with its row's figures (zero if none)."""
    tz = ZoneInfo(zone)
    first: date = report.from_.astimezone(tz).date()
    last: date = report.to.astimezone(tz).date()
    by_day = {getattr(r.key, "day", None): r for r in report.rows}
    out = []
    d = first
    while d <= last:
        r = by_day.get(d)
        out.append(
            {
                "day": d,
                "clicks": r.clicks if r else 0,
                "conversions": (r.leads + r.sales) if r else 0,
                "revenue": r.revenue if r else "0",
                "commission": r.commission if r else "0",
            }
        )
        d += timedelta(days=1)
    return out


@pages.get("/partner")
async def overview(
    request: Request,
    who: Partner,
    session: Session,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Response:
    """Earnings, traffic and the last 30 days of one program."""
    rows = await _programs(session, who)
    program = _chosen(rows, program_id)
    if program is None:
        return render(request, "partner/overview.html", who, program=None, programs=rows)
    report = await reports.performance(
        session,
        who.principal,
        reports.Params(None, None, program.id, None, None, "day", None),
    )
    money = await balances(session, who.principal, program.id, None)
    days = days_of(report, report.time_zone)
    return render(
        request,
        "partner/overview.html",
        who,
        program=program,
        programs=rows,
        report=report,
        totals=next((t for t in report.totals if t.currency == program.currency), None),
        balance=next((b for b in money.items if b.currency == program.currency), None),
        days=days,
        chart=charts.daily_bars(
            [(d["day"], d["clicks"]) for d in days], "Clicks per day, last 30 days"
        ),
    )


@pages.get("/partner/links")
async def links_page(
    request: Request,
    who: Partner,
    session: Session,
    page: Pagination,
    made: Annotated[uuid.UUID | None, Query()] = None,
) -> Response:
    """The partner's links, and a form to make one."""
    rows, cursor = await links.list_links(session, page, who.principal)
    base = request.app.state.settings.public_url
    by_sub1 = await reports.performance(
        session, who.principal, reports.Params(None, None, None, None, None, "sub1", None)
    )
    return render(
        request,
        "partner/links.html",
        who,
        links=[links.to_out(r, base) for r in rows],
        next_cursor=cursor,
        programs=await _programs(session, who),
        made=made,
        by_sub1=by_sub1,
    )


@pages.post("/partner/links")
async def make_link(who: Partner, session: Session, values: Form) -> Response:
    """Make a link within the program's rules (allowed domains, code rules)."""
    body = web.parse(LinkCreate, values)
    link = await links.create_link(session, body, who.principal)
    return RedirectResponse(
        f"/portal/partner/links?made={link.id}", status_code=303, headers=HEADERS
    )


@pages.get("/partner/conversions")
async def conversions_page(
    request: Request,
    who: Partner,
    session: Session,
    page: Pagination,
    status: Annotated[str | None, Query(pattern="^(accepted|review|rejected)$")] = None,
) -> Response:
    """Conversions with their status, the reasons given and what they earned."""
    rows, cursor = await conversions.page(session, who.principal, page, status=status)
    items = await conversions_out(session, who.principal, rows)
    zones = {p.id: p.time_zone for p in await _programs(session, who)}
    return render(
        request,
        "partner/conversions.html",
        who,
        conversions=items,
        next_cursor=cursor,
        zones=zones,
        status=status,
    )


@pages.get("/partner/payouts")
async def payouts_page(
    request: Request, who: Partner, session: Session, page: Pagination
) -> Response:
    """Payouts: amount, state, reference."""
    rows, cursor = await settlement.list_payouts(
        session, page, who.principal, partner_id=None, status=None, run_id=None
    )
    return render(
        request,
        "partner/payouts.html",
        who,
        payouts=[settlement.payout_out(r) for r in rows],
        next_cursor=cursor,
    )


@pages.get("/partner/payouts.csv")
async def payouts_csv(who: Partner, session: Session, page: Pagination) -> Response:
    """The payouts as the API's CSV (`GET /v1/payouts?format=csv`)."""
    rows, _ = await settlement.list_payouts(
        session, page, who.principal, partner_id=None, status=None, run_id=None
    )
    return csvout.response(
        exports.payouts_csv([settlement.payout_out(r) for r in rows]), "payouts.csv"
    )
