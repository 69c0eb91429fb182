"""Partner postbacks: a partner's own tracker URL, with macros, for its conversion events."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.auth.scope import is_partner
from service.config import Settings
from service.errors import NotFound, ValidationFailed, field_error
from service.events import macros, outbox, repository
from service.events.schemas import (
    PostbackCreate,
    PostbackCreated,
    PostbackOut,
    PostbackUpdate,
    SecretRotated,
)
from service.events.service import (
    apply_update,
    check_target,
    new_sealed_secret,
    refuse_nulls,
    rotate,
)
from service.kit.ids import new_id
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.models import Partner, Postback, SubscriberStatus


def postback_out(row: Postback) -> PostbackOut:
    """The API shape of a postback: never its secret."""
    return PostbackOut(
        id=row.id,
        partner_id=row.partner_id,
        url_template=row.url_template,
        events=list(row.events),
        status=row.status,  # type: ignore[arg-type]
        disabled_reason=row.disabled_reason,
        secret_set_at=row.secret_set_at,
        previous_secret_expires_at=row.previous_secret_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def check_template(template: str, settings: Settings) -> None:
    """422 on url_template: unknown macros, macros in the host, or a target refused."""
    unknown = macros.unknown_macros(template)
    if unknown:
        known = ", ".join(f"{{{m}}}" for m in sorted(macros.MACROS))
        raise ValidationFailed(
            [
                {
                    "field": "url_template",
                    "message": f"unknown macro {{{name}}}; the macros are {known}",
                }
                for name in unknown
            ]
        )
    if macros.authority_has_macro(template):
        raise field_error("url_template", "macros may stand in the path and query only")
    await check_target(macros.sample(template), "url_template", settings)


async def _partner(session: AsyncSession, partner_id: uuid.UUID, by: Principal) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None or (is_partner(by) and by.partner_id != partner_id):
        raise NotFound(f"partner {partner_id} does not exist")
    return partner


async def page(
    session: AsyncSession, partner_id: uuid.UUID, params: PageParams, by: Principal
) -> tuple[list[Postback], str | None]:
    """A page of the partner's postbacks (another partner's path: NotFound)."""
    await _partner(session, partner_id, by)
    return await repository.postbacks(session, by, partner_id, params)


async def create(
    session: AsyncSession,
    partner_id: uuid.UUID,
    body: PostbackCreate,
    by: Principal,
    settings: Settings,
) -> PostbackCreated:
    """A new postback of the partner; its secret is in this answer only."""
    await _partner(session, partner_id, by)
    await check_template(body.url_template, settings)
    row_id = new_id()
    secret, sealed = await new_sealed_secret(session, row_id, settings)
    await outbox.subscribers_changed(session)
    row = Postback(
        id=row_id,
        partner_id=partner_id,
        url_template=body.url_template,
        events=body.events,
        status=SubscriberStatus.enabled,
        secret_sealed=sealed,
        secret_set_at=utc_now(),
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    audit.record(
        session,
        by,
        "postback.created",
        "postback",
        row.id,
        {"partner_id": partner_id, "url_template": body.url_template, "events": body.events},
    )
    return PostbackCreated(**postback_out(row).model_dump(), secret=secret)


async def get(
    session: AsyncSession,
    partner_id: uuid.UUID,
    postback_id: uuid.UUID,
    by: Principal,
    *,
    lock: bool = False,
) -> Postback:
    """A postback the caller may see, or NotFound (another partner's included)."""
    row = await repository.postback(session, by, partner_id, postback_id, lock=lock)
    if row is None:
        raise NotFound(f"postback {postback_id} does not exist")
    return row


async def update(
    session: AsyncSession,
    partner_id: uuid.UUID,
    postback_id: uuid.UUID,
    body: PostbackUpdate,
    by: Principal,
    settings: Settings,
) -> Postback:
    """Change the template, events or status of a postback."""
    refuse_nulls(body, ("url_template", "events", "status"))
    if body.url_template is not None:
        await check_template(body.url_template, settings)
    await outbox.subscribers_changed(session)
    row = await get(session, partner_id, postback_id, by, lock=True)
    changes = apply_update(row, body, ("url_template", "events"))
    await session.flush()
    await session.refresh(row)
    if changes:
        audit.record(session, by, "postback.updated", "postback", row.id, changes)
    return row


async def rotate_secret(
    session: AsyncSession,
    partner_id: uuid.UUID,
    postback_id: uuid.UUID,
    by: Principal,
    settings: Settings,
) -> SecretRotated:
    """A new signing secret; the old one signs too for 24 h."""
    row = await get(session, partner_id, postback_id, by, lock=True)
    out = await rotate(session, row, settings)
    audit.record(
        session,
        by,
        "postback.secret_rotated",
        "postback",
        row.id,
        {"previous_valid_until": out.previous_secret_expires_at},
    )
    return out
