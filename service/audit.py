"""The audit trail: who changed what, when, with the deltas."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.models import AuditEvent


def record(
    session: AsyncSession,
    principal: Principal | None,
    action: str,
    object_type: str,
    object_id: uuid.UUID,
    data: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to the session's transaction."""
    session.add(
        AuditEvent(
            actor_key_id=principal.key_id if principal else None,
            actor_role=str(principal.role) if principal else None,
            action=action,
            object_type=object_type,
            object_id=object_id,
            data=data or {},
        )
    )
