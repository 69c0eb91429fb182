"""The audit trail: who changed what, when, with the deltas.

The deltas are JSON (ids, amounts and times as strings, never a Python repr), and secrets
never enter them: a field in SECRET_FIELDS is recorded as a fingerprint, enough to tell that
it changed (and whether it changed back), never what it is.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.kit.ids import new_id
from service.kit.time import rfc3339
from service.models import AuditEvent

# Bank accounts, IBANs, wallet addresses: what a payout is sent to.
SECRET_FIELDS = frozenset({"payout_details"})
FINGERPRINT_HEX = 16


def json_safe(value: Any) -> Any:
    """The value as plain JSON: UUIDs, Decimals, times and enums as strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, BaseModel):
        return json_safe(value.model_dump(mode="json"))
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, datetime):
        return rfc3339(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} has no JSON form for the audit trail")


def fingerprint(value: Any) -> str | None:
    """A short sha256 of a secret's canonical JSON: tells changes apart, reveals nothing."""
    if value is None:
        return None
    canonical = json.dumps(json_safe(value), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_HEX]


def _redact(value: Any) -> Any:
    # An update's delta {"from": old, "to": new} keeps its shape, each side fingerprinted.
    if isinstance(value, Mapping) and value and set(value) <= {"from", "to"}:
        return {k: fingerprint(v) for k, v in value.items()}
    return fingerprint(value)


def _clean(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(k): _redact(v) if k in SECRET_FIELDS else (_clean(v) if isinstance(v, Mapping) else v)
        for k, v in data.items()
    }


# The columns `values` gives, for statements that insert an event themselves.
COLUMNS = ("id", "actor_key_id", "actor_role", "action", "object_type", "object_id", "data")


def values(
    principal: Principal | None,
    action: str,
    object_type: str,
    object_id: uuid.UUID,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An audit event's row: its data JSON, secrets fingerprinted (for an insert of its own)."""
    return {
        "id": new_id(),
        "actor_key_id": principal.key_id if principal else None,
        "actor_role": str(principal.role) if principal else None,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "data": json_safe(_clean(data or {})),
    }


def record(
    session: AsyncSession,
    principal: Principal | None,
    action: str,
    object_type: str,
    object_id: uuid.UUID,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Add an audit event to the session's transaction; its data JSON, secrets fingerprinted."""
    session.add(AuditEvent(**values(principal, action, object_type, object_id, data)))
