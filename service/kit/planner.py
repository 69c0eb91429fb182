"""Planner settings for the statements of one transaction, or of a block within it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def set_local(session: AsyncSession, name: str, value: str) -> None:
    """SET LOCAL name = value: a planner setting until the transaction ends."""
    await session.execute(select(func.set_config(name, value, True)))


@asynccontextmanager
async def planner(session: AsyncSession, **settings: str) -> AsyncIterator[None]:
    """These planner settings for the statements within, then back to what they were."""
    names = list(settings)
    before = (await session.execute(select(*(func.current_setting(n) for n in names)))).one()
    await session.execute(select(*(func.set_config(n, v, True) for n, v in settings.items())))
    try:
        yield
    finally:
        await session.execute(
            select(*(func.set_config(n, v, True) for n, v in zip(names, before, strict=True)))
        )
