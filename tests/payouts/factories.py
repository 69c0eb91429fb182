"""Ledger rows written straight to the database: conversions and commissions are another
domain's API, so payout tests place the entries they need directly."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from service.kit.time import utc_now
from service.models import CommissionEntry, Conversion
from service.payouts import repository as repo
from tests.factories import create_partner, create_program


def ago(**delta: float) -> datetime:
    """An aware instant this long before now, whole seconds so it round-trips exactly."""
    return (utc_now() - timedelta(**delta)).replace(microsecond=0)


async def run_row(session: AsyncSession, program_id: uuid.UUID) -> uuid.UUID:
    """A run's row, as a run starts with it (its payouts are the test's to make)."""
    run_id = uuid.uuid4()
    await repo.insert_run(
        session,
        run_id=run_id,
        key=secrets.token_hex(8),
        request_hash=bytes(32),
        as_of=ago(seconds=0),
        program_id=program_id,
        created_by=None,
    )
    return run_id


async def add_entry(
    app: FastAPI,
    partner_id: str | uuid.UUID,
    program_id: str | uuid.UUID,
    amount_minor: int,
    currency: str = "USD",
    available_at: datetime | None = None,
    *,
    kind: str = "commission",
    conversion_status: str | None = None,
    conversion_id: uuid.UUID | None = None,
) -> CommissionEntry:
    """One ledger entry; with a conversion of the given status when one is wanted."""
    available_at = available_at or ago(days=1)
    async with app.state.sessionmaker() as session:
        if conversion_status is not None and conversion_id is None:
            conversion = Conversion(
                program_id=uuid.UUID(str(program_id)),
                type="sale",
                order_id=f"order-{secrets.token_hex(6)}",
                status=conversion_status,
                amount_minor=abs(amount_minor) * 10,
                currency=currency,
                program_amount_minor=abs(amount_minor) * 10,
                program_currency=currency,
                occurred_at=available_at - timedelta(days=30),
                partner_id=uuid.UUID(str(partner_id)),
                request_hash=hashlib.sha256(secrets.token_bytes(8)).digest(),
                items=[],
                metadata_={},
                attribution={},
            )
            session.add(conversion)
            await session.flush()
            conversion_id = conversion.id
        entry = CommissionEntry(
            partner_id=uuid.UUID(str(partner_id)),
            program_id=uuid.UUID(str(program_id)),
            conversion_id=conversion_id,
            kind=kind,
            amount_minor=amount_minor,
            currency=currency,
            available_at=available_at,
            period_month=available_at.astimezone(UTC).date().replace(day=1),
            explain={"test": True},
        )
        session.add(entry)
        await session.commit()
        return entry


async def set_conversion_status(app: FastAPI, conversion_id: uuid.UUID, status: str) -> None:
    """Move a conversion to review, accepted or rejected."""
    async with app.state.sessionmaker() as session:
        conversion = await session.get(Conversion, conversion_id)
        assert conversion is not None
        conversion.status = status
        await session.commit()


async def setup(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    *,
    partners: int = 1,
    **program: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A fresh program and partners, so that each test sees only its own ledger."""
    prog = await create_program(client, admin, **program)
    return prog, [await create_partner(client, admin) for _ in range(partners)]


def item_of(preview: dict[str, Any], partner_id: str, currency: str = "USD") -> dict[str, Any]:
    """The preview row of one partner and currency."""
    rows = [
        i for i in preview["items"] if i["partner_id"] == partner_id and i["currency"] == currency
    ]
    assert len(rows) == 1, preview
    return rows[0]
