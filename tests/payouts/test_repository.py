"""The payouts repository's statements: id lists bound as one array, planner settings local."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.models import Role
from service.payouts import locking
from service.payouts import repository as repo
from tests.payouts.factories import add_entry, ago, run_row, setup

FINANCE = Principal(
    key_id=uuid.uuid4(), role=Role.finance, program_ids=frozenset(), partner_id=None
)


async def test_lookups_take_more_ids_than_a_statement_has_parameters(client, admin, app):
    _, (p,) = await setup(client, admin)
    partner_id = uuid.UUID(p["id"])
    # PostgreSQL's protocol caps a statement at 32767 parameters: a run over more
    # partners than that needs the ids bound as one array, not one parameter each.
    ids = [uuid.uuid4() for _ in range(40_000)] + [partner_id]
    async with app.state.sessionmaker() as session:
        infos = await repo.partner_infos(session, ids)
        assert set(infos) == {partner_id}
        assert infos[partner_id].email == p["email"]
        assert await locking.release_entries(session, ids) == 0
        await locking.delete_payouts(session, ids)


async def test_planner_settings_last_only_as_long_as_they_should(client, admin, app):
    prog, (p,) = await setup(client, admin)
    program_id, partner_id = uuid.UUID(prog["id"]), uuid.UUID(p["id"])
    await add_entry(app, partner_id, program_id, 1500)
    # One connection throughout: a setting that outlived its transaction would show here.
    async with app.state.engine.connect() as conn, AsyncSession(bind=conn) as session:
        before = await session.scalar(text("SHOW work_mem"))
        # Set by the server's configuration or the session: kept, not reset to a default.
        await session.execute(text("SET LOCAL parallel_setup_cost = 123"))
        slices = await repo.unpaid_slices(session, FINANCE, ago(seconds=0), program_id)
        assert [(s.partner_id, s.payable, s.payable_count) for s in slices] == [
            (partner_id, 1500, 1)
        ]
        assert await session.scalar(text("SHOW work_mem")) == "64MB"
        # Free parallel workers for the one sum only.
        assert await session.scalar(text("SHOW parallel_setup_cost")) == "123"
        assert await session.scalar(text("SHOW parallel_tuple_cost")) == "0.1"
        await session.commit()
        assert await session.scalar(text("SHOW work_mem")) == before
        await session.commit()

        run_id, payout_id = await run_row(session, program_id), uuid.uuid4()
        target = [(payout_id, partner_id, "USD")]
        locked = await locking.lock_entries(session, run_id, target, ago(seconds=0), program_id)
        assert [(r.id, r.partner_id, r.amount_minor, r.entry_count) for r in locked] == [
            (payout_id, partner_id, 1500, 1)
        ]
        # Off for the one UPDATE only: later statements of the run plan as usual.
        assert await session.scalar(text("SHOW enable_nestloop")) == "on"
        await session.rollback()


async def test_a_target_that_locks_nothing_makes_no_payout(client, admin, app):
    prog, (p, q) = await setup(client, admin, partners=2)
    program_id = uuid.UUID(prog["id"])
    paid, idle = uuid.UUID(p["id"]), uuid.UUID(q["id"])
    await add_entry(app, paid, program_id, 700)
    async with app.state.sessionmaker() as session:
        run_id = await run_row(session, program_id)
        targets = [
            (uuid.uuid4(), paid, "USD"),
            (uuid.uuid4(), idle, "USD"),
            (uuid.uuid4(), paid, "EUR"),
        ]
        locked = await locking.lock_entries(session, run_id, targets, ago(seconds=0), program_id)
        assert [(r.id, r.partner_id, r.currency, r.amount_minor) for r in locked] == [
            (targets[0][0], paid, "USD", 700)
        ]
        stored = await session.execute(
            text("SELECT id, amount_minor, entry_count, status FROM payouts WHERE run_id = :r"),
            {"r": run_id},
        )
        assert [tuple(r) for r in stored] == [(targets[0][0], 700, 1, "open")]
        await session.rollback()
