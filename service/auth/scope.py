"""A key's reach as SQL: the clauses every domain's `readable(principal)` is built from.

Each domain repository composes these over its own columns, so that role, partner and
program binding are decided here once and applied by one statement per domain.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, false, true

from service.auth.keys import Principal
from service.kit.driver import among
from service.models import Role


def bound_programs(principal: Principal) -> frozenset[uuid.UUID] | None:
    """The programs a key is confined to, or None when it reaches every program."""
    if principal.role == Role.merchant:
        return principal.program_ids
    if principal.role == Role.partner and principal.program_ids:
        return principal.program_ids
    return None


def in_programs(principal: Principal, column: Any) -> ColumnElement[bool]:
    """True for rows of a program the key may reach."""
    bound = bound_programs(principal)
    if bound is None:
        return true()
    if not bound:
        return false()
    return among(column, sorted(bound))


def of_partner(principal: Principal, column: Any) -> ColumnElement[bool]:
    """True for rows of the key's own partner; every row for keys that are not a partner's."""
    if principal.role != Role.partner:
        return true()
    if principal.partner_id is None:
        return false()
    return column == principal.partner_id  # type: ignore[no-any-return]


def is_partner(principal: Principal) -> bool:
    """Whether answers are shaped for a partner (no merchant or other partners' data)."""
    return principal.role == Role.partner
