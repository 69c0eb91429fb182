"""Deal registration: register under the conflict rule, approve, reject."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.errors import Conflict, NotFound, ValidationFailed
from service.events import announce
from service.kit.money import MoneyError, format_minor, parse_amount, to_minor
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.models import Deal, DealStatus, Program
from service.partnering import membership
from service.partnering.deals import repository
from service.partnering.deals.domains import email_domain, holds, normalize_domain
from service.partnering.deals.schemas import DealCreate, DealOut


def status_of(deal: Deal) -> str:
    """The status as the API shows it: an approved deal past its time is `expired`."""
    if deal.status == DealStatus.approved and not holds(deal.status, deal.expires_at, utc_now()):
        return "expired"
    return deal.status


def to_out(deal: Deal) -> DealOut:
    """The API shape of a deal."""
    return DealOut(
        id=deal.id,
        program_id=deal.program_id,
        partner_id=deal.partner_id,
        company=deal.company,
        domain=deal.domain,
        contact_email=deal.contact_email,
        expected_value=None
        if deal.expected_value_minor is None
        else format_minor(deal.expected_value_minor, deal.currency),
        currency=deal.currency,
        notes=deal.notes,
        status=status_of(deal),  # type: ignore[arg-type]
        reason=deal.reason,
        decided_at=deal.decided_at,
        expires_at=deal.expires_at,
        created_at=deal.created_at,
        updated_at=deal.updated_at,
    )


def _parse(body: DealCreate, program: Program) -> tuple[str, str | None, int | None]:
    errors: list[dict[str, str]] = []
    domain = normalize_domain(body.domain)
    if domain is None:
        errors.append({"field": "domain", "message": "not a domain name"})
    contact_domain = email_domain(str(body.contact_email)) if body.contact_email else None
    value = None
    if body.expected_value is not None:
        try:
            value = to_minor(parse_amount(body.expected_value, program.currency), program.currency)
        except MoneyError as exc:
            errors.append({"field": "expected_value", "message": str(exc)})
    if errors:
        raise ValidationFailed(errors)
    assert domain is not None
    return domain, contact_domain, value


async def create_deal(session: AsyncSession, body: DealCreate, by: Principal) -> Deal:
    """Register a deal for the key's partner, unless another partner holds its domain."""
    assert by.partner_id is not None
    program = await membership.program_for(session, body.program_id, by)
    await membership.partner_in_program(session, by.partner_id, program)
    domain, contact_domain, value = _parse(body, program)
    domains = [d for d in (domain, contact_domain) if d is not None]
    # Check and insert under the domains' locks: of two registrations at once, the one
    # that waits sees the other's deal.
    await repository.lock_domains(session, program.id, domains)
    if await repository.other_holder(session, program.id, by.partner_id, domains, utc_now()):
        # Which partner holds it is not this partner's business.
        raise Conflict(
            "another partner has registered a deal for this customer",
            errors=[{"field": "domain", "message": "already registered in this program"}],
        )
    deal = Deal(
        program_id=program.id,
        partner_id=by.partner_id,
        company=body.company,
        domain=domain,
        contact_email=str(body.contact_email).lower() if body.contact_email else None,
        contact_domain=contact_domain,
        expected_value_minor=value,
        currency=program.currency,
        notes=body.notes,
        status=DealStatus.submitted,
    )
    session.add(deal)
    await session.flush()
    await session.refresh(deal)
    audit.record(session, by, "deal.created", "deal", deal.id, {"domain": domain})
    await announce.deal(session, deal, "deal.created")
    return deal


async def get_deal(session: AsyncSession, deal_id: uuid.UUID, by: Principal) -> Deal:
    """A deal the key may read, or NotFound."""
    deal = await repository.get(session, by, deal_id)
    if deal is None:
        raise NotFound(f"deal {deal_id} does not exist")
    return deal


async def _decide(
    session: AsyncSession, deal_id: uuid.UUID, by: Principal, to: DealStatus, reason: str | None
) -> Deal:
    deal = await repository.get(session, by, deal_id, lock=True)
    if deal is None:
        raise NotFound(f"deal {deal_id} does not exist")
    if deal.status != DealStatus.submitted:
        raise Conflict(f"a {status_of(deal)} deal cannot be decided again")
    now = utc_now()
    deal.status = to
    deal.reason = reason
    deal.decided_at = now
    if to == DealStatus.approved:
        program = await session.get(Program, deal.program_id)
        assert program is not None
        deal.expires_at = now + timedelta(days=program.deal_days)
    await session.flush()
    await session.refresh(deal)
    audit.record(
        session,
        by,
        f"deal.{to}",
        "deal",
        deal.id,
        {"reason": reason, "expires_at": deal.expires_at},
    )
    await announce.deal(session, deal, f"deal.{to}")
    return deal


async def approve_deal(
    session: AsyncSession, deal_id: uuid.UUID, reason: str | None, by: Principal
) -> Deal:
    """Approve a submitted deal: it holds its domain for the program's deal_days."""
    return await _decide(session, deal_id, by, DealStatus.approved, reason)


async def reject_deal(
    session: AsyncSession, deal_id: uuid.UUID, reason: str | None, by: Principal
) -> Deal:
    """Reject a submitted deal, with a reason the partner sees."""
    return await _decide(session, deal_id, by, DealStatus.rejected, reason)


async def list_deals(
    session: AsyncSession,
    params: PageParams,
    by: Principal,
    status: str | None,
    program_id: uuid.UUID | None,
) -> tuple[list[Deal], str | None]:
    """A page of the deals the key may read."""
    return await repository.page(session, by, params, status=status, program_id=program_id)
