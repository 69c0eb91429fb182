"""How the program's requests (applications, deals, disputes) are read: one by id, or a page
of a readable statement narrowed by status and program."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from service.kit.pagination import PageParams, page_of, paginate_query

Row = TypeVar("Row")


async def page(
    session: AsyncSession,
    readable: Select[Any],
    model: Any,
    params: PageParams,
    *,
    status: str | None,
    program_id: uuid.UUID | None,
) -> tuple[list[Row], str | None]:
    """A page of `readable` (rows of `model`), optionally of one status and program."""
    stmt = readable
    if status is not None:
        stmt = stmt.where(model.status == status)
    if program_id is not None:
        stmt = stmt.where(model.program_id == program_id)
    rows = list((await session.scalars(paginate_query(stmt, model.id, params))).all())
    return page_of(rows, params)


async def one(
    session: AsyncSession, readable: Select[Any], model: Any, row_id: uuid.UUID, *, lock: bool
) -> Any:
    """The readable row of this id (its row locked when asked), or None."""
    stmt = readable.where(model.id == row_id)
    return await session.scalar(stmt.with_for_update() if lock else stmt)
