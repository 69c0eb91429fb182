"""Click records as the redirect hands them to write_batch (a tuple in CLICK_COLUMNS order)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any


def click_record(
    link: dict[str, Any],
    *,
    at: datetime,
    visitor: bytes,
    user_agent: str = "ua",
    bot: bool = False,
    click_id: uuid.UUID | None = None,
) -> tuple[Any, ...]:
    return (
        click_id or uuid.uuid4(),
        at,
        uuid.UUID(link["id"]),
        uuid.UUID(link["partner_id"]),
        uuid.UUID(link["program_id"]),
        "c1test",
        b"ip-hash",
        visitor,
        user_agent,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        bot,
        not bot,
        None,
    )
