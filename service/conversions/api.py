from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.deps import Admin, AdminMerchantPartner, Merchant, merchant_check
from service.auth.keys import Principal
from service.auth.scope import is_partner
from service.conversions import fx, intake, refunds, repository, review
from service.conversions.schemas import (
    Attribution,
    ConversionCreate,
    ConversionOut,
    FraudHit,
    FxRateIn,
    FxRateOut,
    RefundCreate,
    RefundOut,
    ReviewDecision,
)
from service.db import Session, request_session
from service.kit.columns import Columns
from service.kit.leanroute import LeanRoute
from service.kit.money import format_minor
from service.kit.pagination import Page, Pagination
from service.kit.time import Instant
from service.ledger import repository as ledger
from service.ledger.schemas import entry_body, entry_out
from service.models import CommissionEntry, Conversion, Refund
from service.openapi_responses import ERRORS, WRITE_ERRORS
from service.tracking.clickid import ClickIdSigner

router = APIRouter(tags=["conversions"])
JSON = "application/json"


def context(request: Request) -> intake.Context:
    """The signer and hash key of the running app, built once."""
    state = request.app.state
    ctx = getattr(state, "conversion_context", None)
    if ctx is None:
        secrets = state.secrets
        signer = getattr(state, "click_signer", None) or ClickIdSigner(
            secrets.click_keys, secrets.click_key_id
        )
        ctx = intake.Context(signer=signer, email_key=secrets.email_key)
        state.conversion_context = ctx
    return ctx


async def conversions_out(
    session: AsyncSession, principal: Principal, rows: Sequence[Conversion]
) -> list[ConversionOut]:
    """The API shape of conversions, with the entries the key may read (one query for all)."""
    entries = await ledger.by_conversion(session, principal, [r.id for r in rows])
    return [conversion_out(r, entries[r.id], principal) for r in rows]


_CONVERSION = Columns(Conversion)


def _attribution(stored: dict[str, Any] | None, principal: Principal) -> dict[str, Any]:
    attribution = dict(stored or {})
    if is_partner(principal) and attribution.get("detail"):
        # The merchant's customer ids are not the partner's to read.
        detail = {k: v for k, v in attribution["detail"].items() if k != "customer_id"}
        attribution["detail"] = detail or None
    return attribution or {"partner_id": None, "method": None, "reasons": []}


def conversion_body(
    row: Conversion, entries: Sequence[CommissionEntry], principal: Principal
) -> dict[str, Any]:
    """ConversionOut's fields of a conversion, in the model's order, as this key may read it.

    The values are the row's, already of their fields' types; what is stored as JSON of a
    shape of its own (the attribution, the fraud hits) is validated here, into its model,
    which ConversionOut takes as it is."""
    v = _CONVERSION.values(row)
    amount, program_amount, fx_rate = v["amount_minor"], v["program_amount_minor"], v["fx_rate"]
    return {
        "id": v["id"],
        "program_id": v["program_id"],
        "type": v["type"],
        "order_id": v["order_id"],
        "status": v["status"],
        "review_reason": v["review_reason"],
        "fraud": [FraudHit.model_validate(h) for h in v["fraud"]],
        "amount": None if amount is None else format_minor(amount, v["currency"]),
        "currency": v["currency"],
        "program_amount": (
            None if program_amount is None else format_minor(program_amount, v["program_currency"])
        ),
        "program_currency": v["program_currency"],
        "fx_rate": None if fx_rate is None else f"{fx_rate.normalize():f}",
        "refunded_amount": format_minor(v["refunded_minor"], v["currency"]),
        "occurred_at": v["occurred_at"],
        "click_id": v["click_token"],
        "promo_code": v["promo_code"],
        "customer_id": None if is_partner(principal) else v["customer_external_id"],
        "items": v["items"],
        "metadata": v["metadata_"],
        "attribution": Attribution.model_validate(_attribution(v["attribution"], principal)),
        "commissions": [entry_body(e, principal) for e in entries],
        "created_at": v["created_at"],
        "updated_at": v["updated_at"],
    }


def conversion_out(
    row: Conversion, entries: Sequence[CommissionEntry], principal: Principal
) -> ConversionOut:
    """The API shape of a conversion, as this key may read it."""
    return ConversionOut.model_validate(conversion_body(row, entries, principal))


_dump = ConversionOut.__pydantic_serializer__.to_json


def answer_json(body: dict[str, Any]) -> bytes:
    """A conversion_body as ConversionOut's JSON: the bytes pydantic's serializer writes for
    the validated model, written by orjson from the dict without building the model (a
    quarter of the time; the tests compare the two). A value orjson refuses (an integer
    past 64 bits in the metadata) goes through the model."""
    try:
        return orjson.dumps(body, default=_not_native, option=orjson.OPT_UTC_Z)
    except TypeError:  # orjson.JSONEncodeError
        return _dump(ConversionOut.model_validate(body), by_alias=True)


def _not_native(value: object) -> Any:
    # What orjson does not take itself: asyncpg's UUIDs (a subclass) and the nested models
    # (their fields, in order). Anything else is refused.
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Attribution | FraudHit):
        return value.model_dump()
    raise TypeError(f"{type(value).__name__} is not written by orjson here")


async def record(
    session: AsyncSession, body: ConversionCreate, auth: Principal, request: Request
) -> tuple[dict[str, Any], bool]:
    """POST /v1/conversions: the conversion as recorded (conversion_body), and True when it
    is new."""
    recorded = await intake.record_conversion(session, body, auth, context(request))
    conversion, entries = recorded.conversion, recorded.entries
    if entries is None:
        entries = (await ledger.by_conversion(session, auth, [conversion.id]))[conversion.id]
    # Otherwise the entries just written, every one in the key's program (a merchant or
    # admin key reads all of a program's entries): the ledger need not be read back.
    return conversion_body(conversion, entries, auth), recorded.created


@router.post(
    "/v1/conversions",
    status_code=201,
    responses={**WRITE_ERRORS, 200: {"description": "the same conversion, replayed"}},
)
async def create(
    body: ConversionCreate, auth: Merchant, session: Session, request: Request, response: Response
) -> ConversionOut:
    out, created = await record(session, body, auth, request)
    if not created:
        response.status_code = 200
    return ConversionOut.model_validate(out)


async def create_lean(request: Request, body: ConversionCreate) -> Response:
    """POST /v1/conversions as `create` answers it, served by a LeanJsonRoute
    (service.kit.leanroute): the same checks in the same order, the same session."""
    async with request_session(request) as session:
        auth = await merchant_check(request, session)
        out, created = await record(session, body, auth, request)
    return Response(answer_json(out), 201 if created else 200, media_type=JSON)


@router.get("/v1/conversions", responses=ERRORS)
async def list_(
    auth: AdminMerchantPartner,
    session: Session,
    page: Pagination,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[str | None, Query(pattern="^(accepted|review|rejected)$")] = None,
    occurred_from: Annotated[Instant | None, Query(alias="from")] = None,
    occurred_to: Annotated[Instant | None, Query(alias="to")] = None,
) -> Page[ConversionOut]:
    rows, cursor = await repository.page(
        session,
        auth,
        page,
        program_id=program_id,
        partner_id=partner_id,
        status=status,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
    )
    return Page(items=await conversions_out(session, auth, rows), next_cursor=cursor)


@router.get("/v1/conversions/{conversion_id}", responses=ERRORS)
async def get(
    conversion_id: uuid.UUID, auth: AdminMerchantPartner, session: Session
) -> ConversionOut:
    row = await repository.get_conversion(session, auth, conversion_id)
    return (await conversions_out(session, auth, [row]))[0]


async def _decide(
    conversion_id: uuid.UUID, action: str, body: ReviewDecision, auth: Admin, session: Session
) -> ConversionOut:
    row = await review.decide(session, conversion_id, action, body.reason, auth)
    await session.refresh(row)
    return (await conversions_out(session, auth, [row]))[0]


@router.post("/v1/conversions/{conversion_id}/review", responses=WRITE_ERRORS)
async def hold(
    conversion_id: uuid.UUID, body: ReviewDecision, auth: Admin, session: Session
) -> ConversionOut:
    """Hold an accepted conversion for review: its entries stop being payable."""
    return await _decide(conversion_id, "review", body, auth, session)


@router.post("/v1/conversions/{conversion_id}/approve", responses=WRITE_ERRORS)
async def approve(
    conversion_id: uuid.UUID, body: ReviewDecision, auth: Admin, session: Session
) -> ConversionOut:
    """Accept a conversion held for review."""
    return await _decide(conversion_id, "approve", body, auth, session)


@router.post("/v1/conversions/{conversion_id}/reject", responses=WRITE_ERRORS)
async def reject(
    conversion_id: uuid.UUID, body: ReviewDecision, auth: Admin, session: Session
) -> ConversionOut:
    """Reject a conversion: everything it earned is reversed; the reason is shown to the partner."""
    return await _decide(conversion_id, "reject", body, auth, session)


@router.post(
    "/v1/refunds",
    status_code=201,
    responses={**WRITE_ERRORS, 200: {"description": "the same refund, replayed"}},
)
async def refund(
    body: RefundCreate, auth: Merchant, session: Session, response: Response
) -> RefundOut:
    out, created = await record_refund(session, body, auth)
    if not created:
        response.status_code = 200
    return out


async def record_refund(
    session: AsyncSession, body: RefundCreate, auth: Principal
) -> tuple[RefundOut, bool]:
    """POST /v1/refunds: the refund as recorded, and True when it is new."""
    recorded = await refunds.record_refund(session, body, auth)
    entries = recorded.reversals
    if entries is None:
        entries = await ledger.of_refund(session, auth, recorded.refund.id)
    # Otherwise the reversals just written, each of the key's program (a merchant or admin
    # key reads all of a program's entries): the ledger need not be read back.
    return refund_out(recorded.refund, recorded.conversion, entries, auth), recorded.created


async def refund_lean(request: Request, body: RefundCreate) -> Response:
    """POST /v1/refunds as `refund` answers it, served by a LeanJsonRoute: the same checks
    in the same order, the same session, the same model dumped as FastAPI dumps it."""
    async with request_session(request) as session:
        auth = await merchant_check(request, session)
        out, created = await record_refund(session, body, auth)
    return Response(_dump_refund(out, by_alias=True), 201 if created else 200, media_type=JSON)


_dump_refund = RefundOut.__pydantic_serializer__.to_json


def refund_out(
    row: Refund, conversion: Conversion, entries: list[CommissionEntry], principal: Principal
) -> RefundOut:
    """The API shape of a refund with its reversals."""
    return RefundOut(
        id=row.id,
        refund_id=row.refund_id,
        conversion_id=row.conversion_id,
        amount=format_minor(row.amount_minor, row.currency),
        currency=row.currency,
        program_amount=format_minor(row.program_amount_minor, conversion.program_currency),
        created_at=row.created_at,
        reversals=[entry_out(e, principal) for e in entries],
    )


@router.post("/v1/fx-rates", status_code=201, responses=WRITE_ERRORS)
async def put_rate(body: FxRateIn, auth: Admin, session: Session) -> FxRateOut:
    """Record the rate of a day (a second post for the same day replaces it)."""
    return await fx.put_rate(session, body, auth)


@router.get("/v1/fx-rates", responses=ERRORS)
async def list_rates(
    auth: Admin,
    session: Session,
    base_currency: Annotated[str | None, Query()] = None,
    quote_currency: Annotated[str | None, Query()] = None,
) -> list[FxRateOut]:
    return await fx.list_rates(session, base_currency, quote_currency)


# The routes in front of FastAPI's for the most frequent writes of all.
LEAN_ROUTES: tuple[LeanRoute, ...] = (
    LeanRoute("/v1/conversions", "POST", ConversionCreate, create_lean),
    LeanRoute("/v1/refunds", "POST", RefundCreate, refund_lean),
)
