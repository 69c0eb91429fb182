"""Cursor pagination over time-ordered ids: no item lost or repeated across pages."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select

from service.errors import field_error

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PageParams:
    limit: int
    after: uuid.UUID | None


def encode_cursor(last_id: uuid.UUID) -> str:
    """An opaque cursor for the item after `last_id`."""
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    """The id a cursor points after; a clear 422 for a bad one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (ValueError, TypeError) as exc:
        raise field_error("cursor", "not a cursor this API issued") from exc


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="items per page")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> PageParams:
    """The limit and cursor query parameters."""
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


Pagination = Annotated[PageParams, Depends(page_params)]


def paginate_query(stmt: Select[Any], id_column: Any, params: PageParams) -> Select[Any]:
    """Order by id, start after the cursor, fetch one extra row to know if more exist."""
    if params.after is not None:
        stmt = stmt.where(id_column > params.after)
    return stmt.order_by(id_column).limit(params.limit + 1)


def page_of(rows: list[Any], params: PageParams) -> tuple[list[Any], str | None]:
    """Trim the extra row and compute next_cursor."""
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        return rows, encode_cursor(rows[-1].id)
    return rows, None
