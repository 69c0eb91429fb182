"""Integrations: connecting a shop to a program, and the connection's settings and sealed
signing secret (what happens to its webhooks is in hooks.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal, create_key
from service.config import Settings
from service.errors import NotFound, field_error
from service.integrations import repository, sealing
from service.integrations.schemas import IntegrationCreate, IntegrationUpdate, SecretRotation
from service.kit.ids import new_id
from service.kit.time import utc_now
from service.models import Integration, IntegrationStatus, Program, Role


async def create(
    session: AsyncSession, body: IntegrationCreate, by: Principal, settings: Settings
) -> Integration:
    """Connect a shop to a program; its secret is sealed and never shown again."""
    program = await session.get(Program, body.program_id)
    if program is None or not by.sees_program(program.id):
        raise field_error("program_id", "no such program")
    key_row, _ = await create_key(
        session, Role.merchant, program_ids=[program.id], name=f"{body.provider} integration"
    )
    integration_id = new_id()
    key = await sealing.sealing_key(session, settings)
    row = Integration(
        id=integration_id,
        program_id=program.id,
        provider=body.provider,
        status=IntegrationStatus.enabled,
        description=body.description,
        accept_test_events=body.accept_test_events,
        secret_sealed=sealing.seal(key, integration_id, body.signing_secret),
        secret_set_at=utc_now(),
        api_key_id=key_row.id,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    audit.record(
        session,
        by,
        "integration.created",
        "integration",
        row.id,
        {"program_id": program.id, "provider": body.provider},
    )
    return row


async def get(session: AsyncSession, integration_id: uuid.UUID, by: Principal) -> Integration:
    """An integration the caller may see, or NotFound."""
    row = await repository.get(session, by, integration_id)
    if row is None:
        raise NotFound(f"integration {integration_id} does not exist")
    return row


async def update(
    session: AsyncSession, integration_id: uuid.UUID, body: IntegrationUpdate, by: Principal
) -> Integration:
    """Enable or disable an integration, or change its description and test-event setting."""
    row = await get(session, integration_id, by)
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name != "description" and value is None:
            raise field_error(name, "must not be null")
        if getattr(row, name) != value:
            changes[name] = {"from": getattr(row, name), "to": value}
            setattr(row, name, value)
    await session.flush()
    await session.refresh(row)
    if changes:
        audit.record(session, by, "integration.updated", "integration", row.id, changes)
    return row


async def rotate_secret(
    session: AsyncSession,
    integration_id: uuid.UUID,
    body: SecretRotation,
    by: Principal,
    settings: Settings,
) -> Integration:
    """Replace the signing secret; the old one still verifies for `previous_valid_hours`."""
    row = await get(session, integration_id, by)
    key = await sealing.sealing_key(session, settings)
    now = utc_now()
    if body.previous_valid_hours:
        row.previous_secret_sealed = row.secret_sealed
        row.previous_secret_expires_at = now + timedelta(hours=body.previous_valid_hours)
    else:
        row.previous_secret_sealed = None
        row.previous_secret_expires_at = None
    row.secret_sealed = sealing.seal(key, row.id, body.signing_secret)
    row.secret_set_at = now
    await session.flush()
    await session.refresh(row)
    audit.record(
        session,
        by,
        "integration.secret_rotated",
        "integration",
        row.id,
        {"previous_valid_until": row.previous_secret_expires_at},
    )
    return row
