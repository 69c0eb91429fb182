"""What each domain emits: the event of a change, its `data` the resource's GET shape.

Each function is one call after the change, in the change's session; the data is built only
when a subscriber wants the event. Imports of the domains' shapes are made inside the
functions: those domains import this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.events import outbox
from service.models import (
    Click,
    CommissionEntry,
    Conversion,
    Partner,
    Payout,
    PayoutRun,
    Refund,
    Role,
)

# Events carry what an admin reads: endpoints are the merchant's own systems.
SYSTEM = Principal(
    key_id=uuid.UUID(int=0), role=Role.admin, program_ids=frozenset(), partner_id=None
)


async def conversion(session: AsyncSession, row: Conversion, type_: str) -> None:
    """conversion.created, .held, .approved or .rejected."""

    async def build() -> dict[str, Any]:
        from service.conversions.api import conversions_out

        return (await conversions_out(session, SYSTEM, [row]))[0].model_dump(mode="json")

    async def postback_values(data: dict[str, Any]) -> dict[str, str | None]:
        subs: dict[str, str | None] = {}
        if row.click_id is not None:
            click = (
                await session.execute(
                    select(Click.sub1, Click.sub2, Click.sub3, Click.sub4, Click.sub5).where(
                        Click.id == row.click_id
                    )
                )
            ).first()
            if click is not None:
                subs = {f"sub{i + 1}": click[i] for i in range(5)}
        own = [
            Decimal(e["amount"])
            for e in data.get("commissions", [])
            if e["partner_id"] == str(row.partner_id)
        ]
        return {
            "conversion_id": data["id"],
            "click_id": data.get("click_id"),
            "type": data["type"],
            "amount": data.get("program_amount"),
            "currency": data["program_currency"],
            "status": data["status"],
            "occurred_at": data["occurred_at"],
            "commission": f"{sum(own, Decimal(0)):f}",
            **subs,
        }

    await outbox.emit(
        session,
        type_,
        program_id=row.program_id,
        partner_id=row.partner_id,
        build=build,
        postback_values=postback_values,
    )


async def conversion_recorded(session: AsyncSession, row: Conversion) -> None:
    """A new conversion: created, and held or rejected when the fraud rules said so."""
    await conversion(session, row, "conversion.created")
    if row.status == "review":
        await conversion(session, row, "conversion.held")
    elif row.status == "rejected":
        await conversion(session, row, "conversion.rejected")


async def refund(session: AsyncSession, row: Refund, of: Conversion) -> None:
    """refund.created."""

    async def build() -> dict[str, Any]:
        from service.conversions.api import refund_out
        from service.ledger import repository as ledger

        entries = await ledger.of_refund(session, SYSTEM, row.id)
        return refund_out(row, of, entries, SYSTEM).model_dump(mode="json")

    await outbox.emit(
        session, "refund.created", program_id=of.program_id, partner_id=of.partner_id, build=build
    )


async def entries(session: AsyncSession, rows: Sequence[CommissionEntry]) -> None:
    """commission.created for each new ledger entry, as write_entries returned it."""
    if not rows:
        return
    subs = await outbox.subscriptions(session)
    if not subs.wants_type("commission.created"):
        return
    from service.ledger.schemas import entry_out

    for row in rows:

        async def build(row: CommissionEntry = row) -> dict[str, Any]:
            return entry_out(row, SYSTEM).model_dump(mode="json")

        await outbox.emit(
            session,
            "commission.created",
            program_id=row.program_id,
            partner_id=row.partner_id,
            build=build,
        )


async def payout_run(session: AsyncSession, out: Any, program_id: uuid.UUID | None) -> None:
    """payout_run.created, `out` being the run's RunOut."""

    async def build() -> dict[str, Any]:
        return out.model_dump(mode="json")  # type: ignore[no-any-return]

    await outbox.emit(
        session, "payout_run.created", program_id=program_id, partner_id=None, build=build
    )


async def payout(session: AsyncSession, row: Payout, type_: str) -> None:
    """payout.paid or payout.failed."""
    if not (await outbox.subscriptions(session)).wants_type(type_):
        return
    from service.payouts.settlement import payout_out

    program_id = await session.scalar(
        select(PayoutRun.program_id).where(PayoutRun.id == row.run_id)
    )

    async def build() -> dict[str, Any]:
        return payout_out(row).model_dump(mode="json")

    await outbox.emit(session, type_, program_id=program_id, partner_id=row.partner_id, build=build)


async def partner(session: AsyncSession, row: Partner, type_: str) -> None:
    """partner.created or partner.updated."""

    async def build() -> dict[str, Any]:
        from service.partners.service import to_out

        return to_out(row).model_dump(mode="json")

    await outbox.emit(session, type_, program_id=None, partner_id=row.id, build=build)


async def deal(session: AsyncSession, row: Any, type_: str) -> None:
    """deal.created, .approved or .rejected, `row` being a Deal."""

    async def build() -> dict[str, Any]:
        from service.partnering.deals.service import to_out

        return to_out(row).model_dump(mode="json")

    await outbox.emit(
        session, type_, program_id=row.program_id, partner_id=row.partner_id, build=build
    )


async def dispute(session: AsyncSession, row: Any, type_: str) -> None:
    """dispute.created or .resolved, `row` being a Dispute."""

    async def build() -> dict[str, Any]:
        from service.partnering.disputes.service import to_out

        return to_out(row).model_dump(mode="json")

    await outbox.emit(
        session, type_, program_id=row.program_id, partner_id=row.partner_id, build=build
    )


async def application(session: AsyncSession, row: Any) -> None:
    """application.created, `row` being an Application (no partner yet)."""

    async def build() -> dict[str, Any]:
        from service.partnering.applications.service import to_out

        return to_out(row).model_dump(mode="json")

    await outbox.emit(
        session, "application.created", program_id=row.program_id, partner_id=None, build=build
    )
