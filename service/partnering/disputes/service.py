"""Disputes: a partner opens one; an admin resolves it, and an accepted one changes the sale
through the same ledger and review code as everything else."""

from __future__ import annotations

import uuid

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.conversions import review
from service.conversions.customers import bind_customer
from service.errors import Conflict, NotFound, ValidationFailed
from service.events import announce
from service.kit.ids import new_id
from service.kit.money import MoneyError, format_minor, parse_amount, to_minor
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.ledger import service as ledger
from service.models import (
    Conversion,
    ConversionStatus,
    Customer,
    Dispute,
    DisputeKind,
    DisputeStatus,
    Partner,
    Program,
)
from service.partnering import membership
from service.partnering.disputes import repository
from service.partnering.disputes.schemas import DisputeCreate, DisputeOut


def to_out(row: Dispute) -> DisputeOut:
    """The API shape of a dispute."""
    return DisputeOut(
        id=row.id,
        program_id=row.program_id,
        partner_id=row.partner_id,
        kind=row.kind,  # type: ignore[arg-type]
        order_id=row.order_id,
        claim_amount=None
        if row.claim_amount_minor is None
        else format_minor(row.claim_amount_minor, row.currency),
        currency=row.currency,
        evidence=row.evidence,
        status=row.status,  # type: ignore[arg-type]
        reason=row.reason,
        conversion_id=row.conversion_id,
        resolved_at=row.resolved_at,
        created_at=row.created_at,
    )


async def create_dispute(session: AsyncSession, body: DisputeCreate, by: Principal) -> Dispute:
    """Open a dispute for the key's partner; one open dispute per order."""
    assert by.partner_id is not None
    program = await membership.program_for(session, body.program_id, by)
    await membership.partner_in_program(session, by.partner_id, program)
    claim = None
    if body.claim_amount is not None:
        try:
            claim = to_minor(parse_amount(body.claim_amount, program.currency), program.currency)
        except MoneyError as exc:
            raise ValidationFailed([{"field": "claim_amount", "message": str(exc)}]) from None
    row = await session.scalar(
        insert(Dispute)
        .values(
            id=new_id(),
            program_id=program.id,
            partner_id=by.partner_id,
            kind=body.kind,
            order_id=body.order_id,
            claim_amount_minor=claim,
            currency=program.currency,
            evidence=body.evidence,
            status=DisputeStatus.open,
        )
        .on_conflict_do_nothing(
            index_elements=["program_id", "partner_id", "order_id"],
            index_where=Dispute.status == "open",
        )
        .returning(Dispute)
    )
    if row is None:
        raise Conflict(
            "this partner already has an open dispute for this order",
            errors=[{"field": "order_id", "message": "already disputed"}],
        )
    audit.record(session, by, "dispute.created", "dispute", row.id, {"order_id": body.order_id})
    await announce.dispute(session, row, "dispute.created")
    return row


async def _credit_missing(
    session: AsyncSession, dispute: Dispute, conversion: Conversion, reason: str
) -> None:
    """Attribute an unattributed conversion to the disputing partner; it earns by the terms
    in force at its time, through the same ledger code as a new conversion."""
    if conversion.partner_id is not None:
        if conversion.partner_id == dispute.partner_id:
            raise Conflict("the sale is already credited to this partner")
        raise Conflict("the sale is attributed to another partner; it cannot be moved")
    if conversion.status == ConversionStatus.rejected:
        raise Conflict("the sale was rejected; a rejected sale earns nothing")
    program = await session.get(Program, conversion.program_id)
    partner = await session.get(Partner, dispute.partner_id)
    assert program is not None and partner is not None
    before = conversion.attribution or {}
    conversion.partner_id = partner.id
    conversion.attribution_method = "dispute"
    conversion.attribution = {
        "partner_id": str(partner.id),
        "method": "dispute",
        "reasons": before.get("reasons", []),
        "detail": {"dispute_id": str(dispute.id), "reason": reason},
    }
    if conversion.customer_id is not None:
        customer = await session.get(Customer, conversion.customer_id, with_for_update=True)
        if customer is not None:
            bind_customer(customer, partner.id, conversion, rejected=False)
    await ledger.earn(session, conversion, program, partner, None)


async def resolve_dispute(
    session: AsyncSession, dispute_id: uuid.UUID, outcome: str, reason: str, by: Principal
) -> Dispute:
    """Accept or decline an open dispute; accepting changes the sale it names."""
    dispute = await repository.get(session, by, dispute_id, lock=True)
    if dispute is None:
        raise NotFound(f"dispute {dispute_id} does not exist")
    if dispute.status != DisputeStatus.open:
        raise Conflict(f"the dispute is already {dispute.status}")
    if outcome == "accepted":
        conversion = await repository.conversion_of_order(
            session, dispute.program_id, dispute.order_id
        )
        if conversion is None:
            raise Conflict(
                f"no conversion of order {dispute.order_id!r} is stored; decline the dispute, "
                "or record the sale first",
                errors=[{"field": "outcome", "message": "nothing to accept"}],
            )
        if dispute.kind == DisputeKind.missing:
            await _credit_missing(session, dispute, conversion, reason)
        else:
            if conversion.partner_id != dispute.partner_id:
                raise Conflict("the sale is not this partner's")
            if conversion.status != ConversionStatus.review:
                raise Conflict(f"only a held sale can be approved; this one is {conversion.status}")
            await review.decide(session, conversion.id, "approve", reason, by)
        dispute.conversion_id = conversion.id
    dispute.status = DisputeStatus(outcome)
    dispute.reason = reason
    dispute.resolved_at = utc_now()
    await session.flush()
    await session.refresh(dispute)
    audit.record(
        session,
        by,
        "dispute.resolved",
        "dispute",
        dispute.id,
        {"outcome": outcome, "reason": reason, "conversion_id": dispute.conversion_id},
    )
    await announce.dispute(session, dispute, "dispute.resolved")
    return dispute


async def get_dispute(session: AsyncSession, dispute_id: uuid.UUID, by: Principal) -> Dispute:
    """A dispute the key may read, or NotFound."""
    row = await repository.get(session, by, dispute_id)
    if row is None:
        raise NotFound(f"dispute {dispute_id} does not exist")
    return row


async def list_disputes(
    session: AsyncSession,
    params: PageParams,
    by: Principal,
    status: str | None,
    program_id: uuid.UUID | None,
) -> tuple[list[Dispute], str | None]:
    """A page of the disputes the key may read."""
    return await repository.page(session, by, params, status=status, program_id=program_id)
