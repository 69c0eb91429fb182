"""Factories for the partner program tests: a program, partners in it, their keys."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import make_key
from tests.conversions.factories import TEN_PERCENT, setup
from tests.factories import create_partner


async def member(
    client: Any,
    admin: dict[str, str],
    app: Any,
    program: dict[str, Any] | None = None,
    terms: dict[str, Any] | None = None,
    **program_overrides: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """A program (given or new), a partner with an agreement in it, and the partner's key."""
    program, partner = await setup(
        client, admin, terms=terms or TEN_PERCENT, program=program, **program_overrides
    )
    key = await make_key(app, "partner", partner_id=uuid.UUID(partner["id"]))
    return program, partner, key


async def outsider(client: Any, admin: dict[str, str], app: Any) -> dict[str, str]:
    """The key of a partner with no agreement anywhere."""
    partner = await create_partner(client, admin)
    return await make_key(app, "partner", partner_id=uuid.UUID(partner["id"]))
