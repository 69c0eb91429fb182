"""Links: codes, destinations, fixed params, ownership, expiry and pauses."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed, field_error
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.links import repository
from service.links.schemas import LinkCreate, LinkOut, LinkUpdate, ParamsIn
from service.models import Agreement, Link, LinkStatus, Partner, PartnerStatus, Program, Role
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
