"""Partners: status rules, the parent tree, unique emails."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal, forget_after_commit
from service.errors import Conflict, NotFound, ValidationFailed
from service.events import announce
from service.kit.pagination import PageParams
from service.models import Partner, PartnerStatus
from service.partners import repository
from service.partners.schemas import PartnerCreate, PartnerOut, PartnerUpdate

# terminated is final; the rest may move as a program manager would expect.
TRANSITIONS: dict[str, frozenset[str]] = {
    PartnerStatus.pending: frozenset({"active", "suspended", "terminated"}),
    PartnerStatus.active: frozenset({"suspended", "terminated"}),
    PartnerStatus.suspended: frozenset({"active", "terminated"}),
    PartnerStatus.terminated: frozenset(),
}

# The advisory lock key that serialises changes of partners' parents.
PARENT_LOCK = 0x7061_7265_6E74  # "parent"


def to_out(partner: Partner) -> PartnerOut:
    """The API shape of a partner."""
    return PartnerOut(
        id=partner.id,
        name=partner.name,
        email=partner.email,
        status=partner.status,  # type: ignore[arg-type]
        parent_id=partner.parent_id,
        payout_method=partner.payout_method,
        payout_details=partner.payout_details,
        metadata=partner.metadata_,
        created_at=partner.created_at,
        updated_at=partner.updated_at,
    )


async def get_partner(session: AsyncSession, partner_id: uuid.UUID, by: Principal) -> Partner:
    """A partner the caller may see, or NotFound."""
    partner = await repository.get(session, by, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} does not exist")
    return partner


async def _check_email_free(
    session: AsyncSession, email: str, except_id: uuid.UUID | None = None
) -> None:
    stmt = select(Partner.id).where(Partner.email == email)
    if except_id is not None:
        stmt = stmt.where(Partner.id != except_id)
    if await session.scalar(stmt) is not None:
        raise Conflict(
            "another partner has this email",
            errors=[{"field": "email", "message": "already used by another partner"}],
        )


async def _check_parent(
    session: AsyncSession, parent_id: uuid.UUID, child_id: uuid.UUID | None
) -> None:
    if child_id is not None and parent_id == child_id:
        raise ValidationFailed(
            [{"field": "parent_id", "message": "a partner cannot parent itself"}]
        )
    if await session.get(Partner, parent_id) is None:
        raise ValidationFailed([{"field": "parent_id", "message": "no such partner"}])
    if child_id is None:
        return
    # Two updates that each look acyclic alone (A under B, B under A) must not both commit:
    # re-parenting is serialised, and the walk below runs after the lock, so it sees what
    # the update before it committed.
    await session.execute(select(func.pg_advisory_xact_lock(PARENT_LOCK)))
    # Walk up from the new parent; meeting the child means a cycle.
    rows = await session.execute(
        select(Partner.id).where(
            Partner.id.in_(
                select(_ancestors(parent_id).c.id)  # type: ignore[arg-type]
            )
        )
    )
    if child_id in {r[0] for r in rows}:
        raise ValidationFailed(
            [{"field": "parent_id", "message": "this parent would make a cycle"}]
        )


def _ancestors(start: uuid.UUID):  # type: ignore[no-untyped-def]
    base = select(Partner.id, Partner.parent_id).where(Partner.id == start).cte(recursive=True)
    step = select(Partner.id, Partner.parent_id).join(base, Partner.id == base.c.parent_id)
    return base.union(step)


async def create_partner(session: AsyncSession, body: PartnerCreate, by: Principal) -> Partner:
    """Validate and store a new partner."""
    email = str(body.email).lower()
    await _check_email_free(session, email)
    if body.parent_id is not None:
        await _check_parent(session, body.parent_id, None)
    partner = Partner(
        name=body.name,
        email=email,
        status=body.status,
        parent_id=body.parent_id,
        payout_method=body.payout_method,
        payout_details=body.payout_details,
        metadata_=body.metadata,
    )
    session.add(partner)
    await session.flush()
    await session.refresh(partner)
    audit.record(
        session,
        by,
        "partner.created",
        "partner",
        partner.id,
        {"email": email, "payout_details": partner.payout_details},
    )
    await announce.partner(session, partner, "partner.created")
    return partner


async def update_partner(
    session: AsyncSession, partner_id: uuid.UUID, body: PartnerUpdate, by: Principal
) -> Partner:
    """Apply a partial update under the status and parent rules."""
    partner = await get_partner(session, partner_id, by)
    changes = body.model_dump(exclude_unset=True)
    for required in ("name", "email", "status", "payout_details", "metadata"):
        if required in changes and changes[required] is None:
            raise ValidationFailed([{"field": required, "message": "may not be null"}])
    if "status" in changes and changes["status"] != partner.status:
        if changes["status"] not in TRANSITIONS[PartnerStatus(partner.status)]:
            raise Conflict(
                f"a {partner.status} partner cannot become {changes['status']}",
                errors=[{"field": "status", "message": "transition not allowed"}],
            )
    if changes.get("email") is not None:
        changes["email"] = str(changes["email"]).lower()
        await _check_email_free(session, changes["email"], partner.id)
    if changes.get("parent_id") is not None:
        await _check_parent(session, changes["parent_id"], partner.id)
    delta = {}
    for key, value in changes.items():
        attr = "metadata_" if key == "metadata" else key
        old = getattr(partner, attr)
        if old != value:
            # Values as JSON; audit.record fingerprints payout_details instead of keeping it.
            delta[key] = {"from": old, "to": value}
            setattr(partner, attr, value)
    await session.flush()
    await session.refresh(partner)
    if delta:
        audit.record(session, by, "partner.updated", "partner", partner.id, delta)
        await announce.partner(session, partner, "partner.updated")
    if "status" in delta:
        # Suspended and terminated partners' keys stop working; active ones' work again.
        forget_after_commit(session, partner_id=partner.id)
    return partner


async def list_partners(
    session: AsyncSession, params: PageParams, by: Principal, status: str | None = None
) -> tuple[list[Partner], str | None]:
    """A page of the partners the caller may see, optionally of one status."""
    return await repository.page(session, by, params, status=status)
