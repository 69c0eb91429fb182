"""Finance's pages: the payout preview, starting a run, its CSV, marking payouts paid or
failed, and the reconciliation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import RedirectResponse, Response

from service.db import Session
from service.kit import csvout
from service.kit.pagination import PageParams, Pagination
from service.ledger import reconciliation as ledger
from service.models import Role
from service.payouts import exports, runs, settlement
from service.payouts.preview import build_preview
from service.payouts.schemas import MarkFailed, MarkPaid, RunCreate
from service.portal import web
from service.portal.web import HEADERS, Finance, Form, render
from service.programs import repository as programs

pages = web.router()
ROLES = [Role.admin, Role.finance]
ALL = PageParams(limit=200, after=None)

web.register("Payout preview", "/finance", ROLES, 50)
web.register("Payout runs", "/finance/runs", ROLES, 60)
web.register("Reconciliation", "/finance/reconciliation", ROLES, 70)

ProgramFilter = Annotated[uuid.UUID | None, Query()]


async def _programs(session: Session, who: web.SignedIn) -> list[object]:
    rows, _ = await programs.page(session, who.principal, ALL)
    return list(rows)


@pages.get("/finance")
async def preview_page(
    request: Request, who: Finance, session: Session, program_id: ProgramFilter = None
) -> Response:
    """What a run now would pay, hold and carry; the form that starts it."""
    preview = await build_preview(session, who.principal, None, program_id)
    return render(
        request,
        "finance/preview.html",
        who,
        preview=preview,
        programs=await _programs(session, who),
        program_id=program_id,
        idempotency_key=web.idempotency_key(),
    )


@pages.post("/finance/runs")
async def start_run(who: Finance, session: Session, values: Form) -> Response:
    """Start the run the preview showed; the form's key makes a second submit the same run."""
    key = runs.check_idempotency_key(values.get("idempotency_key"))
    body = web.parse(
        RunCreate, {"as_of": values.get("as_of", ""), "program_id": values.get("program_id", "")}
    )
    run, _ = await runs.create_run(session, body, key, who.principal)
    return RedirectResponse(f"/portal/finance/runs/{run.id}", status_code=303, headers=HEADERS)


@pages.get("/finance/runs")
async def runs_page(request: Request, who: Finance, session: Session, page: Pagination) -> Response:
    """Every run, oldest first, with its totals."""
    items, cursor = await runs.list_runs(session, page, who.principal, None)
    return render(request, "finance/runs.html", who, runs=items, next_cursor=cursor)


@pages.get("/finance/runs/{run_id}")
async def run_page(run_id: uuid.UUID, request: Request, who: Finance, session: Session) -> Response:
    """A run's payouts, each to mark paid (with the transfer reference) or failed."""
    run = await runs.run_out(session, await runs.get_run(session, run_id, who.principal))
    return render(request, "finance/run.html", who, run=run)


@pages.get("/finance/runs/{run_id}/export.csv")
async def run_csv(run_id: uuid.UUID, who: Finance, session: Session) -> Response:
    """The run's CSV, as `GET /v1/payout-runs/{id}/export.csv` answers it."""
    run = await runs.get_run(session, run_id, who.principal)
    return csvout.response(await exports.run_csv(session, run), f"payout-run-{run.id}.csv")


@pages.post("/finance/payouts/{payout_id}/paid")
async def mark_paid(payout_id: uuid.UUID, who: Finance, session: Session, values: Form) -> Response:
    """Mark a payout paid with its transfer reference."""
    body = web.parse(MarkPaid, {"reference": values.get("reference", "")})
    payout = await settlement.mark_paid(session, payout_id, body, who.principal)
    return RedirectResponse(
        f"/portal/finance/runs/{payout.run_id}", status_code=303, headers=HEADERS
    )


@pages.post("/finance/payouts/{payout_id}/failed")
async def mark_failed(
    payout_id: uuid.UUID, who: Finance, session: Session, values: Form
) -> Response:
    """Mark a payout failed: its entries are released for a later run."""
    body = web.parse(MarkFailed, {"reason": values.get("reason", "")})
    payout = await settlement.mark_failed(session, payout_id, body, who.principal)
    return RedirectResponse(
        f"/portal/finance/runs/{payout.run_id}", status_code=303, headers=HEADERS
    )


@pages.get("/finance/reconciliation")
async def reconciliation_page(
    request: Request, who: Finance, session: Session, program_id: ProgramFilter = None
) -> Response:
    """sum(entries) = paid + open + unpaid per partner and currency; mismatches first."""
    result = await ledger.reconciliation(session, program_id)
    return render(
        request,
        "finance/reconciliation.html",
        who,
        result=result,
        programs=await _programs(session, who),
        program_id=program_id,
    )
