"""Links and agreements for the link and redirect tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx

from service.kit.time import utc_now
from service.models import Agreement


async def join_program(
    app: Any,
    partner_id: str,
    program_id: str,
    *,
    terminated_at: datetime | None = None,
) -> None:
    """An agreement row binding the partner to the program (terms are not needed here)."""
    async with app.state.sessionmaker() as session:
        session.add(
            Agreement(
                partner_id=uuid.UUID(partner_id),
                program_id=uuid.UUID(program_id),
                starts_at=utc_now(),
                terminated_at=terminated_at,
            )
        )
        await session.commit()


async def create_link(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    program: dict[str, Any],
    partner: dict[str, Any] | None,
    **overrides: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"program_id": program["id"]}
    if partner is not None:
        body["partner_id"] = partner["id"]
    body.update(overrides)
    r = await client.post("/v1/links", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def click_token(location: str, click_param: str = "aff_click_id") -> str:
    """The click id a redirect put in its Location."""
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(location).query)[click_param][0]


async def click_rows(app: Any, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Committed click rows by id, with their user agent's text (read through a fresh
    connection)."""
    from sqlalchemy import select

    from service.models import Click, UserAgent

    stmt = (
        select(*Click.__table__.c, UserAgent.user_agent)
        .outerjoin(UserAgent, UserAgent.id == Click.user_agent_id)
        .where(Click.id.in_(ids))
    )
    async with app.state.sessionmaker() as session:
        rows = (await session.execute(stmt)).all()
    return {row.id: row for row in rows}


async def wait_until(predicate: Any, *, attempts: int = 100, delay: float = 0.05) -> bool:
    """Poll an async predicate until it holds (bounded); the outcome, not the time, is tested."""
    import asyncio

    for _ in range(attempts):
        if await predicate():
            return True
        await asyncio.sleep(delay)
    return False
