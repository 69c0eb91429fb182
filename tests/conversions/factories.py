"""Factories for the conversion tests: links, promo codes and click ids straight in the database."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from service.models import Link, PromoCode
from service.tracking.clickid import ClickIdSigner
from tests.factories import create_partner, create_program

TEN_PERCENT = {"rules": [{"event": "sale", "type": "percent", "percent": "10"}], "hold_days": 30}


async def add_link(app: Any, program_id: str, partner_id: str) -> uuid.UUID:
    async with app.state.sessionmaker() as session:
        link = Link(
            program_id=uuid.UUID(program_id),
            partner_id=uuid.UUID(partner_id),
            code=f"t{secrets.token_hex(6)}",
            destination_url="https://shop.example/",
            params=[],
            status="active",
        )
        session.add(link)
        await session.commit()
        return link.id


async def add_promo(
    app: Any, program_id: str, partner_id: str, code: str | None = None, **extra: Any
) -> str:
    code = code or f"SAVE{secrets.token_hex(3).upper()}"
    async with app.state.sessionmaker() as session:
        session.add(
            PromoCode(
                program_id=uuid.UUID(program_id),
                partner_id=uuid.UUID(partner_id),
                code=code,
                code_normalized=code.casefold(),
                status="active",
                uses=0,
                **extra,
            )
        )
        await session.commit()
    return code


def click_id(app: Any, link_id: uuid.UUID, at: datetime | None = None) -> str:
    secrets_ = app.state.secrets
    signer = ClickIdSigner(secrets_.click_keys, secrets_.click_key_id)
    return signer.issue(link_id, at or datetime.now(UTC) - timedelta(minutes=5)).token


async def setup(
    client: Any,
    admin: dict[str, str],
    terms: dict[str, Any] | None = None,
    program: dict[str, Any] | None = None,
    partner: dict[str, Any] | None = None,
    effective_from: datetime | None = None,
    **program_overrides: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A program and a partner with an agreement in force since a year ago."""
    program = program or await create_program(client, admin, **program_overrides)
    partner = partner or await create_partner(client, admin)
    start = effective_from or datetime.now(UTC) - timedelta(days=400)
    r = await client.post(
        f"/v1/partners/{partner['id']}/agreements",
        json={
            "program_id": program["id"],
            "terms": terms or TEN_PERCENT,
            "effective_from": start.isoformat(),
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return program, partner


def sale(program: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {
        "program_id": program["id"],
        "type": "sale",
        "order_id": f"o-{secrets.token_hex(6)}",
        "amount": "100.00",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body
