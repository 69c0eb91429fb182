"""Promo codes: a partner's code in a program, matched ignoring case, with a validity
window and a use limit counted atomically.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from service import audit
from service.auth.keys import Principal
from service.errors import Conflict, NotFound, field_error
from service.kit.columns import Columns
from service.kit.driver import Prepared
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.links import repository
from service.links.schemas import PromoCodeCreate, PromoCodeOut, PromoCodeUpdate
from service.models import Partner, Program, PromoCode, PromoCodeStatus


def normalise_promo_code(code: str) -> str:
    """The case-insensitive key of a promo code (NFKC case folding)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", code).casefold())


def promo_to_out(promo: PromoCode) -> PromoCodeOut:
    """The API shape of a promo code."""
    return PromoCodeOut(
        id=promo.id,
        program_id=promo.program_id,
        partner_id=promo.partner_id,
        code=promo.code,
        valid_from=promo.valid_from,
        valid_to=promo.valid_to,
        max_uses=promo.max_uses,
        uses=promo.uses,
        status=promo.status,  # type: ignore[arg-type]
        external_ids=list(promo.external_ids),
        created_at=promo.created_at,
        updated_at=promo.updated_at,
    )


def _check_promo_text(code: str) -> str:
    text = code.strip()
    if not text or len(text) > 64:
        raise field_error("code", "must be 1-64 characters")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise field_error("code", "must not contain spaces or control characters")
    normalised = normalise_promo_code(text)
    if len(normalised) > 64:
        raise field_error("code", "is too long once case-folded")
    return text


def _check_window(valid_from: datetime | None, valid_to: datetime | None) -> None:
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise field_error("valid_to", "must be after valid_from")


def _check_external_ids(ids: list[str]) -> list[str]:
    out: list[str] = []
    for raw in ids:
        value = raw.strip()
        if not value or len(value) > 255:
            raise field_error("external_ids", "each id must be 1-255 characters")
        if not value.isprintable():
            raise field_error("external_ids", "each id must be printable characters")
        if value in out:
            raise field_error("external_ids", f"{value!r} is listed twice")
        out.append(value)
    return out


async def _claim_external_ids(
    session: AsyncSession, program_id: uuid.UUID, ids: list[str], promo_id: uuid.UUID | None
) -> None:
    """Conflict when another promo code of the program already holds one of the ids.

    A transaction-scoped lock per program makes the check and the write one step for
    concurrent writers (an array's items cannot carry a unique constraint).
    """
    if not ids:
        return
    await session.execute(
        select(
            func.pg_advisory_xact_lock(func.hashtextextended(f"promo_external_ids:{program_id}", 0))
        )
    )
    query = select(PromoCode.code, PromoCode.external_ids).where(
        PromoCode.program_id == program_id, PromoCode.external_ids.overlap(ids)
    )
    if promo_id is not None:
        query = query.where(PromoCode.id != promo_id)
    holder = (await session.execute(query.limit(1))).one_or_none()
    if holder is not None:
        shared = ", ".join(i for i in ids if i in holder.external_ids)
        raise Conflict(
            f"promo code {holder.code!r} of the program already holds {shared}",
            errors=[{"field": "external_ids", "message": f"{shared} already held in this program"}],
        )


def _promo_taken() -> Conflict:
    return Conflict(
        "the program already has this promo code (codes ignore case)",
        errors=[{"field": "code", "message": "already taken in this program"}],
    )


async def create_promo_code(
    session: AsyncSession, body: PromoCodeCreate, by: Principal
) -> PromoCode:
    """Validate and store a new promo code, bound to one partner."""
    code = _check_promo_text(body.code)
    normalised = normalise_promo_code(code)
    _check_window(body.valid_from, body.valid_to)
    external_ids = _check_external_ids(body.external_ids)
    if await session.get(Program, body.program_id) is None:
        raise field_error("program_id", "no such program")
    if await session.get(Partner, body.partner_id) is None:
        raise field_error("partner_id", "no such partner")
    await _claim_external_ids(session, body.program_id, external_ids, None)
    taken = await session.scalar(
        select(PromoCode.id).where(
            PromoCode.program_id == body.program_id, PromoCode.code_normalized == normalised
        )
    )
    if taken is not None:
        raise _promo_taken()
    promo = PromoCode(
        program_id=body.program_id,
        partner_id=body.partner_id,
        code=code,
        code_normalized=normalised,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        max_uses=body.max_uses,
        uses=0,
        status=body.status,
        external_ids=external_ids,
    )
    try:
        async with session.begin_nested():
            session.add(promo)
            await session.flush()
    except IntegrityError as exc:
        if "uq_promo_codes_program_id_code_normalized" in str(exc.orig):
            raise _promo_taken() from None
        raise
    await session.refresh(promo)
    audit.record(
        session,
        by,
        "promo_code.created",
        "promo_code",
        promo.id,
        {"code": code, "program_id": str(body.program_id), "partner_id": str(body.partner_id)},
    )
    return promo


async def get_promo_code(session: AsyncSession, promo_id: uuid.UUID, by: Principal) -> PromoCode:
    """A promo code the caller may see, or NotFound."""
    promo = await repository.get_promo_code(session, by, promo_id)
    if promo is None:
        raise NotFound(f"promo code {promo_id} does not exist")
    return promo


async def update_promo_code(
    session: AsyncSession, promo_id: uuid.UUID, body: PromoCodeUpdate, by: Principal
) -> PromoCode:
    """Change a promo code's window, use limit, status or external ids."""
    promo = await get_promo_code(session, promo_id, by)
    changes = body.model_dump(exclude_unset=True)
    if "status" in changes and changes["status"] is None:
        raise field_error("status", "may not be null")
    if "external_ids" in changes:
        if changes["external_ids"] is None:
            raise field_error("external_ids", "may not be null; [] clears the list")
        changes["external_ids"] = _check_external_ids(changes["external_ids"])
        if changes["external_ids"] != list(promo.external_ids):
            await _claim_external_ids(session, promo.program_id, changes["external_ids"], promo.id)
    valid_from = changes.get("valid_from", promo.valid_from)
    valid_to = changes.get("valid_to", promo.valid_to)
    _check_window(valid_from, valid_to)
    if changes.get("max_uses") is not None and changes["max_uses"] < promo.uses:
        raise field_error("max_uses", f"is below the {promo.uses} uses already made")
    delta: dict[str, Any] = {}
    for key, value in changes.items():
        old = getattr(promo, key)
        if isinstance(old, list):
            old = list(old)
        if old != value:
            delta[key] = {
                "from": old.isoformat() if isinstance(old, datetime) else old,
                "to": value.isoformat() if isinstance(value, datetime) else value,
            }
            setattr(promo, key, value)
    if delta:
        await session.flush()
        await session.refresh(promo)
        audit.record(session, by, "promo_code.updated", "promo_code", promo.id, delta)
    return promo


async def list_promo_codes(
    session: AsyncSession,
    params: PageParams,
    by: Principal,
    *,
    program_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    status: str | None = None,
    code: str | None = None,
) -> tuple[list[PromoCode], str | None]:
    """A page of the promo codes the caller may see, filtered (code matched ignoring case)."""
    return await repository.page_promo_codes(
        session,
        by,
        params,
        program_id=program_id,
        partner_id=partner_id,
        status=status,
        code_normalized=None if code is None else normalise_promo_code(code.strip()),
    )


# The code with its partner, in one statement: a sale that names a code needs both. Rows
# come back as detached objects, to read.
PROMO = Columns(PromoCode)
PARTNER = Columns(Partner)
_PROMO_AND_PARTNER = Prepared(
    select(*PROMO.columns, *PARTNER.columns)
    .join_from(PromoCode, Partner, Partner.id == PromoCode.partner_id)
    .where(
        PromoCode.program_id == bindparam("program_id", type_=PromoCode.program_id.type),
        PromoCode.code_normalized == bindparam("code", type_=PromoCode.code_normalized.type),
    )
)


def refusal(promo: PromoCode, at: datetime) -> str | None:
    """Why the code is not usable at `at`, or None when it is."""
    if promo.status != PromoCodeStatus.active:
        return "promo code disabled"
    if promo.valid_from is not None and at < promo.valid_from:
        return "promo code not yet valid"
    if promo.valid_to is not None and at >= promo.valid_to:
        return "promo code expired"
    if promo.max_uses is not None and promo.uses >= promo.max_uses:
        return "promo code used up"
    return None


async def find_promo_code(
    session: AsyncSession, program_id: uuid.UUID, code: str
) -> tuple[PromoCode, Partner] | None:
    """The program's code matching `code` (ignoring case), with its partner; detached."""
    row = await _PROMO_AND_PARTNER.fetchrow(
        session, {"program_id": program_id, "code": normalise_promo_code(code.strip())}
    )
    if row is None:
        return None
    return PROMO.detached(row), PARTNER.detached(row, len(PROMO))


async def check_promo_code(
    session: AsyncSession, program_id: uuid.UUID, code: str, at: datetime
) -> tuple[PromoCode | None, str | None]:
    """(the code, None) when `code` is usable in the program at `at`; else (None, why not)."""
    found = await find_promo_code(session, program_id, code)
    if found is None:
        return None, "promo code unknown"
    promo = found[0]
    reason = refusal(promo, at)
    return (None, reason) if reason else (promo, None)


_CONSUME = Prepared(
    update(PromoCode)
    .where(
        PromoCode.id == bindparam("promo_code_id", type_=PromoCode.id.type),
        or_(PromoCode.max_uses.is_(None), PromoCode.uses < PromoCode.max_uses),
    )
    .values(uses=PromoCode.uses + 1, updated_at=func.now())
    .returning(PromoCode.uses)
)


async def consume_promo_code(session: AsyncSession, promo_code_id: uuid.UUID) -> bool:
    """Count one use, atomically, only while under max_uses; False when used up."""
    row = await _CONSUME.fetchrow(session, {"promo_code_id": promo_code_id})
    if row is None:
        return False
    # A copy loaded into this session through the ORM shows the new count.
    loaded = session.identity_map.get(identity_key(PromoCode, promo_code_id))
    if loaded is not None:
        set_committed_value(loaded, "uses", row[0])
    return True


async def give_back_promo_use(session: AsyncSession, promo_code_id: uuid.UUID) -> None:
    """Undo consume_promo_code in this transaction (its conversion turned out a replay)."""
    await session.execute(
        update(PromoCode)
        .where(PromoCode.id == promo_code_id)
        .values(uses=PromoCode.uses - 1, updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )


async def promo_code_for_external_id(
    session: AsyncSession, program_id: uuid.UUID, external_id: str
) -> str | None:
    """The code of the program's promo code that lists `external_id` (a shop's id), if any."""
    return await session.scalar(
        select(PromoCode.code).where(
            PromoCode.program_id == program_id, PromoCode.external_ids.contains([external_id])
        )
    )
