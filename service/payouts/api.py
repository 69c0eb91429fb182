from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from service.auth.deps import Finance, FinanceOrPartner
from service.db import Session
from service.kit import csvout
from service.kit.pagination import Page, Pagination
from service.kit.time import Instant
from service.ledger import reconciliation as ledger
from service.openapi_responses import ERRORS, WRITE_ERRORS
from service.payouts import exports, runs, settlement
from service.payouts.balances import Balances, balances
from service.payouts.preview import build_preview
from service.payouts.report import build_report
from service.payouts.schemas import (
    Format,
    MarkFailed,
    MarkPaid,
    PayoutDetail,
    PayoutOut,
    PayoutStatusName,
    Preview,
    Report,
    RunCreate,
    RunOut,
    RunSummary,
)

router = APIRouter(prefix="/v1", tags=["payouts"])

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "JSON, or CSV when asked for"}
}
FormatParam = Annotated[Format | None, Query(description="csv, or json (default)")]


@router.get(
    "/payouts/preview",
    response_model=Preview,
    responses={**ERRORS, **CSV_RESPONSE},
)
async def preview(
    request: Request,
    auth: Finance,
    session: Session,
    as_of: Annotated[Instant | None, Query(description="RFC 3339; now when absent")] = None,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    format: FormatParam = None,
) -> Any:
    result = await build_preview(session, auth, as_of, program_id)
    if csvout.wanted(request, format):
        return csvout.response(exports.preview_csv(result), "payout-preview.csv")
    return result


@router.get("/payouts/report", response_model=Report, responses={**ERRORS, **CSV_RESPONSE})
async def report(
    request: Request,
    auth: Finance,
    session: Session,
    from_: Annotated[Instant, Query(alias="from", description="inclusive, RFC 3339")],
    to: Annotated[Instant, Query(description="exclusive, RFC 3339")],
    format: FormatParam = None,
) -> Any:
    result = await build_report(session, from_, to)
    if csvout.wanted(request, format):
        return csvout.response(exports.report_csv(result), "payouts-paid.csv")
    return result


@router.post("/payout-runs", status_code=201, response_model=RunOut, responses=WRITE_ERRORS)
async def create_run(
    body: RunCreate,
    response: Response,
    auth: Finance,
    session: Session,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="required; the same key replays the run"),
    ] = None,
) -> Any:
    key = runs.check_idempotency_key(idempotency_key)
    run, created = await runs.create_run(session, body, key, auth)
    if not created:
        response.status_code = 200
    return run


@router.get("/payout-runs", responses=ERRORS)
async def list_runs(
    auth: Finance,
    session: Session,
    page: Pagination,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[RunSummary]:
    items, cursor = await runs.list_runs(session, page, auth, program_id)
    return Page(items=items, next_cursor=cursor)


@router.get("/payout-runs/{run_id}", responses=ERRORS)
async def get_run(run_id: uuid.UUID, auth: Finance, session: Session) -> RunOut:
    return await runs.run_out(session, await runs.get_run(session, run_id, auth))


@router.get(
    "/payout-runs/{run_id}/export.csv",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}, "description": "one row per payout"}},
)
async def export_run(run_id: uuid.UUID, auth: Finance, session: Session) -> Response:
    run = await runs.get_run(session, run_id, auth)
    return csvout.response(await exports.run_csv(session, run), f"payout-run-{run.id}.csv")


@router.get("/payouts", response_model=Page[PayoutOut], responses={**ERRORS, **CSV_RESPONSE})
async def list_payouts(
    request: Request,
    auth: FinanceOrPartner,
    session: Session,
    page: Pagination,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[PayoutStatusName | None, Query()] = None,
    run_id: Annotated[uuid.UUID | None, Query()] = None,
    format: FormatParam = None,
) -> Any:
    """Payouts, newest last; `format=csv` answers the page as CSV (next page: the cursor)."""
    rows, cursor = await settlement.list_payouts(
        session, page, auth, partner_id=partner_id, status=status, run_id=run_id
    )
    items = [settlement.payout_out(r) for r in rows]
    if csvout.wanted(request, format):
        response = csvout.response(exports.payouts_csv(items), "payouts.csv")
        if cursor is not None:
            response.headers["X-Next-Cursor"] = cursor
        return response
    return Page(items=items, next_cursor=cursor)


@router.get("/balances", responses=ERRORS)
async def balances_(
    auth: FinanceOrPartner,
    session: Session,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Balances:
    """Payable, pending, on hold and paid per partner and currency; a partner key sees its own."""
    return await balances(session, auth, program_id, partner_id)


@router.get("/payouts/{payout_id}", responses=ERRORS)
async def get_payout(
    payout_id: uuid.UUID, auth: FinanceOrPartner, session: Session
) -> PayoutDetail:
    return await settlement.payout_detail(session, payout_id, auth)


@router.post("/payouts/{payout_id}/paid", responses=WRITE_ERRORS)
async def mark_paid(
    payout_id: uuid.UUID, body: MarkPaid, auth: Finance, session: Session
) -> PayoutOut:
    return settlement.payout_out(await settlement.mark_paid(session, payout_id, body, auth))


@router.post("/payouts/{payout_id}/failed", responses=WRITE_ERRORS)
async def mark_failed(
    payout_id: uuid.UUID, body: MarkFailed, auth: Finance, session: Session
) -> PayoutOut:
    return settlement.payout_out(await settlement.mark_failed(session, payout_id, body, auth))


@router.get("/ledger/reconciliation", responses=ERRORS)
async def reconciliation(
    auth: Finance,
    session: Session,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
) -> ledger.Reconciliation:
    return await ledger.reconciliation(session, program_id)
