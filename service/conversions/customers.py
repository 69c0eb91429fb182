"""A merchant's customers: found (or made) and locked for a conversion, and bound to the
partner of their first attributed one."""

from __future__ import annotations

import typing
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CTE, Table, bindparam, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.kit.columns import Columns
from service.kit.driver import Prepared, binds
from service.kit.ids import new_id
from service.models import Conversion, Customer, Partner, Program


@dataclass(frozen=True)
class Held:
    """A conversion's customer, locked, and the partner it is bound to (if any)."""

    customer: Customer
    partner: Partner | None


# The customer's row, inserted on first sight, locked and read back in one statement, with
# the partner it is bound to (a renewal's attribution needs nothing else). The update that
# changes nothing is what makes the row come back and stay locked whether it was new or not
# (DO NOTHING returns no row, and a SELECT in the same statement would miss a row another
# transaction committed while this one waited on it); the row version it writes is a HOT
# update, no index touched.
_CUSTOMER = Columns(Customer)
_PARTNER = Columns(Partner)
_customers = typing.cast(Table, Customer.__table__)
_customer_insert = insert(_customers).values(binds(_customers, ("id", "program_id", "external_id")))
_upserted = (
    _customer_insert.on_conflict_do_update(
        index_elements=["program_id", "external_id"],
        set_={"external_id": _customer_insert.excluded.external_id},
    )
    .returning(*_CUSTOMER.columns)
    .cte("customer")
)
_PARTNER_ID = _PARTNER.columns.index(typing.cast(Table, Partner.__table__).c.id)
_UPSERT = Prepared(
    select(*(_upserted.c[c.name] for c in _CUSTOMER.columns), *_PARTNER.columns).select_from(
        _upserted.outerjoin(Partner, Partner.id == _upserted.c.partner_id)
    )
)


async def customer_of(
    session: AsyncSession, program: Program, external_id: str | None
) -> Held | None:
    """The program's customer of this id, created on first sight and locked until the
    transaction ends, with its partner; None without an id. Both objects are detached: a
    change to the customer is written by `binding_cte`, not by the session."""
    if not external_id:
        return None
    row = await _UPSERT.fetchrow(
        session, {"id": new_id(), "program_id": program.id, "external_id": external_id}
    )
    assert row is not None  # an upsert always returns its row
    customer = _CUSTOMER.detached(row)
    # No partner row: none bound, or one committed after this statement's snapshot (while it
    # waited on the customer's lock); attribution then reads it.
    if row[len(_CUSTOMER) + _PARTNER_ID] is None:
        return Held(customer, None)
    return Held(customer, _PARTNER.detached(row, len(_CUSTOMER)))


def bind_customer(
    customer: Customer, partner_id: uuid.UUID, conversion: Conversion, *, rejected: bool
) -> bool:
    """Bind the customer to the partner of its first attributed conversion; True when this
    changed the customer (a session's object is then written at its flush; one from
    customer_of, detached, by binding_cte)."""
    changed = False
    # A rejected sale binds no customer to the partner for later ones.
    if customer.partner_id is None and not rejected:
        customer.partner_id = partner_id
        changed = True
    # The recurring window counts from the first attributed sale: a lead earns
    # by its own rule and starts nothing.
    if conversion.type == "sale" and customer.first_attributed_at is None:
        customer.first_conversion_id = conversion.id
        customer.first_attributed_at = conversion.occurred_at
        changed = True
    return changed


_BINDING = ("partner_id", "first_conversion_id", "first_attributed_at")
# The customer's binding as bind_customer left it; its row is locked since customer_of.
# Its parameters are named bound_*: in a conversion's insert, the conversion's own columns
# are parameters too, and the customer may be bound to another partner than the sale's.
_BOUND = (
    update(_customers)
    .where(_customers.c.id == bindparam("bound_id", type_=_customers.c.id.type))
    .values(**binds(_customers, _BINDING, prefix="bound_"), updated_at=func.now())
)


def binding_cte(after: CTE) -> CTE:
    """The write of a customer's binding (parameters: binding_params) as a CTE, only when
    `after` (the conversion's INSERT ... RETURNING, as a CTE) wrote a row: the statement
    that inserts a customer's first attributed sale also binds the customer, and a replay
    does not."""
    return _BOUND.where(exists().select_from(after)).cte("bound")


def binding_params(customer: Customer) -> dict[str, Any]:
    """The parameters of binding_cte, for a customer from customer_of that bind_customer
    changed."""
    held: dict[str, Any] = customer.__dict__
    return {"bound_id": customer.id, **{f"bound_{k}": held[k] for k in _BINDING}}
