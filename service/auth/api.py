from __future__ import annotations

import uuid

from fastapi import APIRouter

from service import audit
from service.auth import keys
from service.auth.deps import Admin
from service.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from service.db import Session
from service.models import ApiKey
from service.openapi_responses import ERRORS, WRITE_ERRORS

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


def to_out(row: ApiKey) -> ApiKeyOut:
    """The API shape of a key (never its hash)."""
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=row.role,  # type: ignore[arg-type]
        program_ids=list(row.program_ids),
        partner_id=row.partner_id,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.post("", status_code=201, responses=WRITE_ERRORS)
async def create(body: ApiKeyCreate, auth: Admin, session: Session) -> ApiKeyCreated:
    row, key = await keys.create_key(
        session, body.role, program_ids=body.program_ids, partner_id=body.partner_id, name=body.name
    )
    await session.refresh(row)
    audit.record(session, auth, "api_key.created", "api_key", row.id, {"role": body.role})
    return ApiKeyCreated(**to_out(row).model_dump(), key=key)


@router.get("", responses=ERRORS)
async def list_(auth: Admin, session: Session) -> list[ApiKeyOut]:
    return [to_out(r) for r in await keys.list_keys(session)]


@router.post("/{key_id}/revoke", responses=ERRORS)
async def revoke(key_id: uuid.UUID, auth: Admin, session: Session) -> ApiKeyOut:
    row = await keys.revoke_key(session, key_id)
    audit.record(session, auth, "api_key.revoked", "api_key", row.id)
    return to_out(row)
