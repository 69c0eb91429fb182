"""Links and promo codes: codes, destinations, ownership, validity windows."""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from service import audit
from service.auth.keys import Principal
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed, field_error
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.links import repository
from service.links.schemas import (
    LinkCreate,
    LinkOut,
    LinkUpdate,
    ParamsIn,
    PromoCodeCreate,
    PromoCodeOut,
    PromoCodeUpdate,
)
from service.models import (
    Agreement,
    Link,
    LinkStatus,
    Partner,
    PartnerStatus,
    Program,
    PromoCode,
    PromoCodeStatus,
    Role,
)
from service.tracking.urls import DeepLinkRefused, validate_deep_link

# Paths a short link must never shadow, compared case-insensitively.
RESERVED_CODES = frozenset(
    {
        "admin",
        "api",
        "assets",
        "docs",
        "favicon.ico",
        "health",
        "healthz",
        "login",
        "logout",
        "metrics",
        "openapi",
        "r",
        "readyz",
        "redoc",
        "robots.txt",
        "static",
        "v1",
        "v2",
        "www",
    }
)
VANITY_CODE = re.compile(r"[A-Za-z0-9_-]{3,64}")
# token_urlsafe(8): 11 characters, 64 random bits; guessing one live link is hopeless.
RANDOM_CODE_BYTES = 8
RANDOM_CODE_ATTEMPTS = 5
MAX_PARAMS = 20
MAX_PARAM_KEY = 64
MAX_PARAM_VALUE = 255
PARAM_KEY = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}")
_UNUSABLE_PARTNER = frozenset({PartnerStatus.suspended, PartnerStatus.terminated})


# --- links --------------------------------------------------------------------------------


def tracking_url(public_url: str, code: str) -> str:
    """The URL a partner shares for a link code."""
    return f"{public_url.rstrip('/')}/r/{code}"


def to_out(link: Link, public_url: str) -> LinkOut:
    """The API shape of a link."""
    return LinkOut(
        id=link.id,
        program_id=link.program_id,
        partner_id=link.partner_id,
        code=link.code,
        url=tracking_url(public_url, link.code),
        destination_url=link.destination_url,
        params=[list(pair) for pair in link.params],
        expires_at=link.expires_at,
        status=link.status,  # type: ignore[arg-type]
        paused_by=link.paused_by,  # type: ignore[arg-type]
        created_at=link.created_at,
        updated_at=link.updated_at,
    )


async def _in_program(session: AsyncSession, partner_id: uuid.UUID, program_id: uuid.UUID) -> bool:
    """True when the partner has an agreement in the program that has not ended."""
    now = utc_now()
    stmt = select(Agreement.id).where(
        Agreement.partner_id == partner_id,
        Agreement.program_id == program_id,
        or_(Agreement.terminated_at.is_(None), Agreement.terminated_at > now),
    )
    return await session.scalar(stmt.limit(1)) is not None


async def _program_for_link(session: AsyncSession, program_id: uuid.UUID, by: Principal) -> Program:
    program = await session.get(Program, program_id)
    if by.role == Role.partner:
        # A program the partner is not in looks exactly like one that does not exist.
        if (
            program is None
            or by.partner_id is None
            or not by.sees_program(program_id)
            or not await _in_program(session, by.partner_id, program_id)
        ):
            raise NotFound(f"program {program_id} does not exist")
        return program
    if program is None:
        raise field_error("program_id", "no such program")
    return program


def normalise_params(value: ParamsIn | None, click_param: str) -> list[list[str]]:
    """Fixed params as [key, value] pairs, checked; ValidationFailed naming the bad one."""
    if value is None:
        return []
    pairs: list[tuple[str, Any]]
    if isinstance(value, dict):
        pairs = list(value.items())
        names = [f"params.{k}" for k, _ in pairs]
    else:
        pairs = []
        names = []
        for i, item in enumerate(value):
            if len(item) != 2:
                raise field_error(f"params[{i}]", "each param is a [key, value] pair")
            pairs.append((item[0], item[1]))
            names.append(f"params[{i}]")
    if len(pairs) > MAX_PARAMS:
        raise field_error("params", f"at most {MAX_PARAMS} params")
    errors = []
    for (key, val), field in zip(pairs, names, strict=True):
        if not PARAM_KEY.fullmatch(key):
            errors.append({"field": field, "message": "key must be 1-64 of A-Z a-z 0-9 _ . - [ ]"})
        elif key == click_param:
            errors.append({"field": field, "message": "the program's click param is set by us"})
        elif len(val) > MAX_PARAM_VALUE or not val.isprintable():
            errors.append(
                {"field": field, "message": f"value must be printable, at most {MAX_PARAM_VALUE}"}
            )
    if errors:
        raise ValidationFailed(errors)
    return [[key, val] for key, val in pairs]


def normalise_destination(url: str | None, program: Program) -> str:
    """The destination, normalised, if it is on the program's allowed domains."""
    if url is None:
        url = program.default_url
    try:
        return validate_deep_link(url, program.allowed_domains)
    except DeepLinkRefused as exc:
        raise field_error("destination_url", f"refused: {exc.reason}") from None


def check_vanity_code(code: str) -> None:
    """Refuse a vanity code that is malformed or reserved."""
    if not VANITY_CODE.fullmatch(code):
        raise field_error("code", "must be 3-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    if code.lower() in RESERVED_CODES:
        raise field_error("code", "this code is reserved")


def _code_taken() -> Conflict:
    return Conflict(
        "another link already has this code",
        errors=[{"field": "code", "message": "already taken"}],
    )


async def create_link(session: AsyncSession, body: LinkCreate, by: Principal) -> Link:
    """Validate and store a new link (vanity or random code)."""
    if by.role == Role.partner:
        if body.partner_id is not None and body.partner_id != by.partner_id:
            raise field_error("partner_id", "a partner key creates links for its own partner only")
        partner_id = by.partner_id
    else:
        if body.partner_id is None:
            raise field_error("partner_id", "required")
        partner_id = body.partner_id
    assert partner_id is not None
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise field_error("partner_id", "no such partner")
    if partner.status in _UNUSABLE_PARTNER:
        if by.role == Role.partner:
            raise Forbidden(f"this partner is {partner.status} and cannot create links")
        raise field_error("partner_id", f"the partner is {partner.status}")
    program = await _program_for_link(session, body.program_id, by)
    if body.code is not None:
        check_vanity_code(body.code)
    destination = normalise_destination(body.destination_url, program)
    params = normalise_params(body.params, program.click_param)
    if body.expires_at is not None and body.expires_at <= utc_now():
        raise field_error("expires_at", "must be in the future")

    for _ in range(RANDOM_CODE_ATTEMPTS):
        code = body.code or secrets.token_urlsafe(RANDOM_CODE_BYTES)
        if body.code is not None:
            taken = await session.scalar(select(Link.id).where(Link.code == code))
            if taken is not None:
                raise _code_taken()
        link = Link(
            program_id=program.id,
            partner_id=partner_id,
            code=code,
            destination_url=destination,
            params=params,
            expires_at=body.expires_at,
            status=body.status,
            paused_by=by.role if body.status == LinkStatus.paused else None,
        )
        try:
            async with session.begin_nested():
                session.add(link)
                await session.flush()
        except IntegrityError as exc:
            if "uq_links_code" not in str(exc.orig):
                raise
            if body.code is not None:
                raise _code_taken() from None
            continue  # a random code collided: draw another
        await session.refresh(link)
        audit.record(
            session,
            by,
            "link.created",
            "link",
            link.id,
            {"code": code, "program_id": str(program.id), "partner_id": str(partner_id)},
        )
        return link
    raise Conflict("could not draw a free random code; try again")


async def get_link(session: AsyncSession, link_id: uuid.UUID, by: Principal) -> Link:
    """A link the caller may see, or NotFound."""
    link = await repository.get(session, by, link_id)
    if link is None:
        raise NotFound(f"link {link_id} does not exist")
    return link


async def update_link(
    session: AsyncSession, link_id: uuid.UUID, body: LinkUpdate, by: Principal
) -> Link:
    """Change a link's destination, params, expiry or status; the code never changes."""
    link = await get_link(session, link_id, by)
    changes = body.model_dump(exclude_unset=True)
    for required in ("destination_url", "status"):
        if required in changes and changes[required] is None:
            raise field_error(required, "may not be null")
    program = await session.get(Program, link.program_id)
    assert program is not None
    delta: dict[str, Any] = {}
    if "destination_url" in changes:
        new = normalise_destination(changes["destination_url"], program)
        if new != link.destination_url:
            delta["destination_url"] = {"from": link.destination_url, "to": new}
            link.destination_url = new
    if "params" in changes:
        new_params = normalise_params(body.params, program.click_param)
        if new_params != link.params:
            delta["params"] = {"from": link.params, "to": new_params}
            link.params = new_params
    if "expires_at" in changes and changes["expires_at"] != link.expires_at:
        delta["expires_at"] = {
            "from": link.expires_at.isoformat() if link.expires_at else None,
            "to": body.expires_at.isoformat() if body.expires_at else None,
        }
        link.expires_at = body.expires_at
    if "status" in changes and changes["status"] != link.status:
        _check_may_set_status(link, changes["status"], by)
        delta["status"] = {"from": link.status, "to": changes["status"]}
        link.status = LinkStatus(changes["status"])
        link.paused_by = by.role if link.status == LinkStatus.paused else None
    if delta:
        await session.flush()
        await session.refresh(link)
        audit.record(session, by, "link.updated", "link", link.id, delta)
    return link


def _check_may_set_status(link: Link, status: str, by: Principal) -> None:
    # An admin's pause is a control over the partner: the partner may not lift it.
    if by.role == Role.partner and status == LinkStatus.active and link.paused_by != Role.partner:
        who = link.paused_by or "an operator"
        raise Forbidden(
            f"this link was paused by {who}; only an admin can re-activate it",
            errors=[{"field": "status", "message": f"paused by {who}"}],
        )


async def list_links(
    session: AsyncSession,
    params: PageParams,
    by: Principal,
    *,
    program_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    status: str | None = None,
) -> tuple[list[Link], str | None]:
    """A page of the links the caller may see, with optional filters."""
    return await repository.page(
        session, by, params, program_id=program_id, partner_id=partner_id, status=status
    )


# --- promo codes --------------------------------------------------------------------------


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
    if await session.get(Program, body.program_id) is None:
        raise field_error("program_id", "no such program")
    if await session.get(Partner, body.partner_id) is None:
        raise field_error("partner_id", "no such partner")
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
    """Change a promo code's window, use limit or status."""
    promo = await get_promo_code(session, promo_id, by)
    changes = body.model_dump(exclude_unset=True)
    if "status" in changes and changes["status"] is None:
        raise field_error("status", "may not be null")
    valid_from = changes.get("valid_from", promo.valid_from)
    valid_to = changes.get("valid_to", promo.valid_to)
    _check_window(valid_from, valid_to)
    if changes.get("max_uses") is not None and changes["max_uses"] < promo.uses:
        raise field_error("max_uses", f"is below the {promo.uses} uses already made")
    delta: dict[str, Any] = {}
    for key, value in changes.items():
        old = getattr(promo, key)
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


async def check_promo_code(
    session: AsyncSession, program_id: uuid.UUID, code: str, at: datetime
) -> tuple[PromoCode | None, str | None]:
    """(the code, None) when `code` is usable in the program at `at`; else (None, why not)."""
    promo = await session.scalar(
        select(PromoCode).where(
            PromoCode.program_id == program_id,
            PromoCode.code_normalized == normalise_promo_code(code.strip()),
        )
    )
    if promo is None:
        return None, "promo code unknown"
    if promo.status != PromoCodeStatus.active:
        return None, "promo code disabled"
    if promo.valid_from is not None and at < promo.valid_from:
        return None, "promo code not yet valid"
    if promo.valid_to is not None and at >= promo.valid_to:
        return None, "promo code expired"
    if promo.max_uses is not None and promo.uses >= promo.max_uses:
        return None, "promo code used up"
    return promo, None


async def consume_promo_code(session: AsyncSession, promo_code_id: uuid.UUID) -> bool:
    """Count one use, atomically, only while under max_uses; False when used up."""
    result = await session.execute(
        update(PromoCode)
        .where(
            PromoCode.id == promo_code_id,
            or_(PromoCode.max_uses.is_(None), PromoCode.uses < PromoCode.max_uses),
        )
        .values(uses=PromoCode.uses + 1, updated_at=utc_now())
        .returning(PromoCode.id, PromoCode.uses)
        .execution_options(synchronize_session=False)
    )
    row = result.one_or_none()
    if row is None:
        return False
    # A copy already loaded in this session (from check_promo_code) shows the new count.
    loaded = session.identity_map.get(identity_key(PromoCode, promo_code_id))
    if loaded is not None:
        set_committed_value(loaded, "uses", row.uses)
    return True
