"""Cursor pagination in creation order: no item lost or repeated across pages.

Ids are UUIDv7, so the id alone orders most tables. Conversions kept random ids from
before that rule; their pages are keyed on (created_at, id) instead, so that old rows
keep their ids and new rows never slip in behind the cursor.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_

from service.errors import field_error

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PageParams:
    limit: int
    after: uuid.UUID | None
    # Set by cursors of lists keyed on (created_at, id).
    after_created: datetime | None = None


def encode_cursor(last_id: uuid.UUID, created_at: datetime | None = None) -> str:
    """An opaque cursor for the item after `last_id` (and its creation time, where keyed)."""
    raw = last_id.bytes
    if created_at is not None:
        micros = (created_at - _EPOCH) // timedelta(microseconds=1)
        raw = micros.to_bytes(8, "big", signed=True) + raw
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[uuid.UUID, datetime | None]:
    """The id (and creation time) a cursor points after; a clear 422 for a bad one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if len(raw) == 24:
            micros = int.from_bytes(raw[:8], "big", signed=True)
            return uuid.UUID(bytes=raw[8:]), _EPOCH + timedelta(microseconds=micros)
        return uuid.UUID(bytes=raw), None
    except (ValueError, TypeError, OverflowError) as exc:
        raise field_error("cursor", "not a cursor this API issued") from exc


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="items per page")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> PageParams:
    """The limit and cursor query parameters."""
    if not cursor:
        return PageParams(limit=limit, after=None)
    after, created = decode_cursor(cursor)
    return PageParams(limit=limit, after=after, after_created=created)


Pagination = Annotated[PageParams, Depends(page_params)]


def paginate_query(
    stmt: Select[Any], id_column: Any, params: PageParams, created_column: Any = None
) -> Select[Any]:
    """Order by id (or creation time, then id), start after the cursor, fetch one extra row."""
    if created_column is None:
        if params.after is not None:
            stmt = stmt.where(id_column > params.after)
        return stmt.order_by(id_column).limit(params.limit + 1)
    if params.after is not None:
        if params.after_created is None:
            raise field_error("cursor", "not a cursor of this list")
        stmt = stmt.where(
            tuple_(created_column, id_column) > tuple_(params.after_created, params.after)
        )
    return stmt.order_by(created_column, id_column).limit(params.limit + 1)


def page_of(
    rows: list[Any], params: PageParams, *, by_created: bool = False
) -> tuple[list[Any], str | None]:
    """Trim the extra row and compute next_cursor."""
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        last = rows[-1]
        return rows, encode_cursor(last.id, last.created_at if by_created else None)
    return rows, None
