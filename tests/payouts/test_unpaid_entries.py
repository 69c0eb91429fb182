"""unpaid_entries stays exactly the entries in no payout: whatever writes an entry, whatever a
run locks, a failed payout gives back, or concurrent runs take."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, text, update

from service.kit.time import rfc3339, utc_now
from service.models import UnpaidEntry
from service.partnering.bounties import run_click_bounties
from service.payouts import locking
from tests.conversions.factories import add_link, click_id, sale
from tests.factories import unique
from tests.links.factories import create_link
from tests.partnering.factories import member
from tests.partnering.test_bounties import put_rollup
from tests.payouts.factories import add_entry, ago, item_of, run_row, setup

SALES_AND_CLICKS = {
    "rules": [
        {"event": "sale", "type": "percent", "percent": "10"},
        {"event": "click", "type": "flat", "amount": "0.02"},
    ],
    "hold_days": 0,
}


async def start_run(client, finance, program_id, as_of=None) -> dict[str, Any]:
    body = {"as_of": rfc3339(as_of or ago(seconds=1)), "program_id": program_id}
    headers = {**finance, "Idempotency-Key": f"run-{secrets.token_hex(8)}"}
    r = await client.post("/v1/payout-runs", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def reconcile(client, finance, program_id=None) -> dict[str, Any]:
    params = {"program_id": program_id} if program_id else {}
    r = await client.get("/v1/ledger/reconciliation", params=params, headers=finance)
    assert r.status_code == 200, r.text
    return r.json()


async def in_step(app, partner_ids) -> None:
    """Every entry of these partners is in exactly one of the two tables, copied exactly."""
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT e.id, u.entry_id IS NOT NULL, l.entry_id IS NOT NULL,"
                " (u.partner_id, u.program_id, u.currency, u.amount_minor, u.available_at,"
                "  u.conversion_id) IS NOT DISTINCT FROM (e.partner_id, e.program_id,"
                "  e.currency, e.amount_minor, e.available_at, e.conversion_id)"
                " FROM commission_entries e"
                " LEFT JOIN unpaid_entries u ON u.entry_id = e.id"
                " LEFT JOIN payout_entries l ON l.entry_id = e.id"
                " WHERE e.partner_id = ANY(:ids)"
            ),
            {"ids": [uuid.UUID(str(p)) for p in partner_ids]},
        )
        for entry_id, unpaid, linked, same in rows:
            assert unpaid != linked, entry_id
            assert same or not unpaid, entry_id


async def test_entries_written_after_a_run_are_paid_by_the_next(client, admin, finance, app):
    program, partner, _ = await member(
        client, admin, app, terms=SALES_AND_CLICKS, min_payout="0", time_zone="UTC"
    )
    link = await add_link(app, program["id"], partner["id"])
    occurred = utc_now() - timedelta(days=2)
    r = await client.post(
        "/v1/conversions",
        json=sale(
            program,
            amount="200.00",
            occurred_at=occurred.isoformat(),
            click_id=click_id(app, link, occurred - timedelta(minutes=5)),
        ),
        headers=admin,
    )
    assert r.status_code == 201, r.text
    conversion = r.json()
    first = await start_run(client, finance, program["id"])
    (paid,) = first["payouts"]
    assert (paid["amount"], paid["entry_count"]) == ("20.00", 1)
    r = await client.post(
        f"/v1/payouts/{paid['id']}/paid", json={"reference": "T1"}, headers=finance
    )
    assert r.status_code == 200, r.text

    # After the run: a refund's reversal (a clawback of the paid sale), an adjustment and
    # a day's click bounty, each written by its own path.
    r = await client.post(
        "/v1/refunds",
        json={
            "program_id": program["id"],
            "order_id": conversion["order_id"],
            "refund_id": unique("rf-"),
            "amount": "50.00",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/adjustments",
        json={
            "partner_id": partner["id"],
            "program_id": program["id"],
            "amount": "30.00",
            "currency": program["currency"],
            "reason": "bonus",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    bounty_link = await create_link(client, admin, program, partner)
    yesterday = (utc_now() - timedelta(days=1)).replace(hour=10, minute=0, second=0)
    await put_rollup(app, bounty_link, yesterday.strftime("%Y-%m-%dT%H:%M:%S"), 50)
    assert await run_click_bounties(app.state.sessionmaker, utc_now()) == 1
    await in_step(app, [partner["id"]])

    # -5.00 + 30.00 + 1.00 (50 clicks at 0.02), all payable now.
    as_of = utc_now() + timedelta(seconds=5)
    r = await client.get(
        "/v1/payouts/preview",
        params={"as_of": rfc3339(as_of), "program_id": program["id"]},
        headers=finance,
    )
    assert item_of(r.json(), partner["id"])["payable"] == "26.00"
    (second,) = (await start_run(client, finance, program["id"], as_of))["payouts"]
    assert (second["amount"], second["entry_count"]) == ("26.00", 3)
    await in_step(app, [partner["id"]])
    assert (await reconcile(client, finance, program["id"]))["balanced"]


async def test_a_failed_payout_gives_back_exactly_its_entries(client, admin, finance, app):
    prog, (p, q) = await setup(client, admin, partners=2, min_payout="0.00")
    for who, amount in ((p, 1500), (p, -200), (q, 700)):
        await add_entry(app, who["id"], prog["id"], amount, available_at=ago(days=3))
    await add_entry(app, p["id"], prog["id"], 999, available_at=ago(days=-3))  # pending
    run = await start_run(client, finance, prog["id"])
    failing = next(x for x in run["payouts"] if x["partner_id"] == p["id"])
    r = await client.post(
        f"/v1/payouts/{failing['id']}/failed", json={"reason": "bounced"}, headers=finance
    )
    assert r.status_code == 200, r.text
    await in_step(app, [p["id"], q["id"]])
    assert (await reconcile(client, finance, prog["id"]))["balanced"]

    again = await start_run(client, finance, prog["id"])
    (retry,) = again["payouts"]
    assert (retry["partner_id"], retry["amount"], retry["entry_count"]) == (p["id"], "13.00", 2)
    await in_step(app, [p["id"], q["id"]])
    assert (await reconcile(client, finance, prog["id"]))["balanced"]


async def test_a_run_that_drops_a_payout_puts_its_entries_back(client, admin, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    program_id, partner_id = uuid.UUID(prog["id"]), uuid.UUID(p["id"])
    made = [await add_entry(app, partner_id, program_id, n) for n in (1500, 300)]
    async with app.state.sessionmaker() as session:
        run_id, payout_id = await run_row(session, program_id), uuid.uuid4()
        target = [(payout_id, partner_id, "USD")]
        locked = await locking.lock_entries(session, run_id, target, ago(seconds=0), program_id)
        assert [(r.id, r.amount_minor, r.entry_count) for r in locked] == [(payout_id, 1800, 2)]
        # The run's drop path: released within the transaction that locked them.
        assert await locking.release_entries(session, [payout_id]) == 2
        await locking.delete_payouts(session, [payout_id])
        await session.commit()
    await in_step(app, [partner_id])
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            text("SELECT entry_id FROM unpaid_entries WHERE partner_id = :p"), {"p": partner_id}
        )
        assert {r[0] for r in rows} == {e.id for e in made}


async def test_concurrent_runs_over_overlapping_scopes_lock_each_entry_once(
    client, admin, finance, app
):
    one, partners_one = await setup(client, admin, partners=3, min_payout="1.00")
    two, partners_two = await setup(client, admin, partners=3, min_payout="1.00")
    everyone = partners_one + partners_two
    expected = Decimal(0)
    for i, p in enumerate(everyone):
        prog = one if p in partners_one else two
        for j in range(4):
            await add_entry(app, p["id"], prog["id"], 100 * (i + 1) + j)
            expected += Decimal(100 * (i + 1) + j) / 100
    scopes = [one["id"], two["id"], None, one["id"], None, two["id"]]
    runs = await asyncio.gather(*(start_run(client, finance, s) for s in scopes))
    mine = {p["id"] for p in everyone}
    payouts = [x for run in runs for x in run["payouts"] if x["partner_id"] in mine]
    assert sum(Decimal(x["amount"]) for x in payouts) == expected
    assert sum(x["entry_count"] for x in payouts) == 24
    async with app.state.sessionmaker() as session:
        linked = await session.scalar(
            text(
                "SELECT count(DISTINCT l.entry_id) FROM payout_entries l"
                " JOIN payouts p ON p.id = l.payout_id WHERE p.id = ANY(:ids)"
            ),
            {"ids": [uuid.UUID(x["id"]) for x in payouts]},
        )
    assert linked == 24
    await in_step(app, [p["id"] for p in everyone])
    for scope in (one["id"], two["id"]):
        assert (await reconcile(client, finance, scope))["balanced"]


async def test_unpaid_entries_out_of_step_unbalance_the_reconciliation(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    entry = await add_entry(app, p["id"], prog["id"], 1500)
    assert (await reconcile(client, finance, prog["id"]))["balanced"]

    async def tamper(stmt: Any) -> None:
        async with app.state.sessionmaker() as session:
            await session.execute(stmt)
            await session.commit()

    async def flagged() -> None:
        for scope in (prog["id"], None):
            body = await reconcile(client, finance, scope)
            assert not body["balanced"]
            (item,) = [i for i in body["items"] if i["partner_id"] == p["id"]]
            assert not item["balanced"]

    this = UnpaidEntry.entry_id == entry.id
    # A copy that says another amount: a run would pay what the ledger does not hold.
    await tamper(update(UnpaidEntry).where(this).values(amount_minor=9999))
    await flagged()
    await tamper(update(UnpaidEntry).where(this).values(amount_minor=1500))
    assert (await reconcile(client, finance, prog["id"]))["balanced"]
    # Gone from unpaid_entries with no payout: it would never be paid.
    await tamper(delete(UnpaidEntry).where(this))
    await flagged()
    async with app.state.sessionmaker() as session:
        session.add(
            UnpaidEntry(
                entry_id=entry.id,
                partner_id=entry.partner_id,
                program_id=entry.program_id,
                currency=entry.currency,
                amount_minor=entry.amount_minor,
                available_at=entry.available_at,
                conversion_id=None,
            )
        )
        await session.commit()
    body = await reconcile(client, finance)
    assert body["balanced"]
