"""The one listing of the program's requests (applications, deals, disputes): a readable
statement narrowed by status and program, a page at a time."""

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
