"""A payout locks its entries in payout_entries: the ledger rows themselves are never rewritten."""

from __future__ import annotations

import secrets
import uuid

import pytest
from sqlalchemy import text

from service.kit.time import rfc3339
from service.models import CommissionEntry, PayoutEntry
from tests.payouts.factories import add_entry, ago, setup


async def versions(app, ids) -> dict[str, str]:
    """Each entry's row version (xmin): it changes whenever PostgreSQL rewrites the row."""
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            text("SELECT id::text, xmin::text FROM commission_entries WHERE id = ANY(:ids)"),
            {"ids": list(ids)},
        )
        return dict(rows.all())


async def entries(client, finance, **params) -> list[dict]:
    r = await client.get("/v1/commissions", params=params, headers=finance)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_a_run_links_entries_without_rewriting_them(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    made = [await add_entry(app, p["id"], prog["id"], n) for n in (1500, 700)]
    ids = {e.id for e in made}
    before = await versions(app, ids)

    r = await client.post(
        "/v1/payout-runs",
        json={"as_of": rfc3339(ago(seconds=1)), "program_id": prog["id"]},
        headers={**finance, "Idempotency-Key": secrets.token_hex(8)},
    )
    assert r.status_code == 201, r.text
    (payout,) = r.json()["payouts"]
    assert (payout["amount"], payout["entry_count"]) == ("22.00", 2)

    assert await versions(app, ids) == before
    locked = await entries(client, finance, payout_id=payout["id"])
    assert {e["id"] for e in locked} == {str(i) for i in ids}
    assert {e["payout_id"] for e in locked} == {payout["id"]}
    assert await entries(client, finance, partner_id=p["id"], unpaid="true") == []

    r = await client.post(
        f"/v1/payouts/{payout['id']}/failed", json={"reason": "bounced"}, headers=finance
    )
    assert r.status_code == 200, r.text
    assert await versions(app, ids) == before
    assert await entries(client, finance, payout_id=payout["id"]) == []
    unpaid = await entries(client, finance, partner_id=p["id"], unpaid="true")
    assert {e["id"] for e in unpaid} == {str(i) for i in ids}
    assert {e["payout_id"] for e in unpaid} == {None}


async def test_unpaid_and_payout_filters_combine(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    await add_entry(app, p["id"], prog["id"], 1500)
    r = await client.post(
        "/v1/payout-runs",
        json={"as_of": rfc3339(ago(seconds=1)), "program_id": prog["id"]},
        headers={**finance, "Idempotency-Key": secrets.token_hex(8)},
    )
    (payout,) = r.json()["payouts"]
    # An entry in this payout is not unpaid: the two filters together match nothing.
    assert await entries(client, finance, payout_id=payout["id"], unpaid="true") == []
    assert len(await entries(client, finance, payout_id=payout["id"], unpaid="false")) == 1


async def test_a_link_to_no_payout_unbalances_the_reconciliation(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    entry = await add_entry(app, p["id"], prog["id"], 1500)
    r = await client.get("/v1/ledger/reconciliation", headers=finance)
    assert r.json()["balanced"]
    # payout_entries has no foreign keys: a link pointing nowhere must still show.
    nowhere = uuid.uuid4()
    async with app.state.sessionmaker() as session:
        session.add(PayoutEntry(entry_id=entry.id, payout_id=nowhere))
        await session.commit()
    body = (await client.get("/v1/ledger/reconciliation", headers=finance)).json()
    assert not body["balanced"]
    (item,) = [i for i in body["items"] if i["partner_id"] == p["id"]]
    assert (item["entries_total"], item["unpaid"], item["balanced"]) == ("15.00", "0.00", False)
    async with app.state.sessionmaker() as session:
        await session.delete(await session.get(PayoutEntry, (nowhere, entry.id)))
        await session.commit()


async def test_an_entry_linked_into_two_payouts_unbalances_the_reconciliation(
    client, admin, finance, app
):
    # Only the run's DELETE from unpaid_entries makes a link, so an entry is in one payout;
    # no index says so (payout_entries has one, by payout): the reconciliation must.
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    made = {}
    for amount in (1500, 700):
        entry = await add_entry(app, p["id"], prog["id"], amount)
        r = await client.post(
            "/v1/payout-runs",
            json={"as_of": rfc3339(ago(seconds=0)), "program_id": prog["id"]},
            headers={**finance, "Idempotency-Key": secrets.token_hex(8)},
        )
        (payout,) = r.json()["payouts"]
        made[amount] = (entry.id, uuid.UUID(payout["id"]))
    assert (await client.get("/v1/ledger/reconciliation", headers=finance)).json()["balanced"]
    (first, _), (_, second) = made[1500], made[700]
    # The first entry also in the second payout, whose amount and count say so: each
    # payout matches its links, and the partner's sums count the entry twice on both sides.
    grow = text(
        "UPDATE payouts SET amount_minor = amount_minor + :n, entry_count = entry_count + :c"
        " WHERE id = :id"
    )
    async with app.state.sessionmaker() as session:
        session.add(PayoutEntry(entry_id=first, payout_id=second))
        await session.execute(grow, {"n": 1500, "c": 1, "id": second})
        await session.commit()
    try:
        body = (await client.get("/v1/ledger/reconciliation", headers=finance)).json()
        assert not body["balanced"]
        assert [m for m in body["mismatches"] if m["partner_id"] == p["id"]] == []
        (item,) = [i for i in body["items"] if i["partner_id"] == p["id"]]
        assert not item["balanced"]
    finally:
        async with app.state.sessionmaker() as session:
            await session.delete(await session.get(PayoutEntry, (second, first)))
            await session.execute(grow, {"n": -1500, "c": -1, "id": second})
            await session.commit()
    assert (await client.get("/v1/ledger/reconciliation", headers=finance)).json()["balanced"]


def test_an_entry_payout_id_cannot_be_assigned():
    entry = CommissionEntry()
    with pytest.raises(AttributeError, match="read only"):
        entry.payout_id = uuid.uuid4()


async def test_each_entry_shows_its_own_payout_among_its_partners(client, admin, finance, app):
    # An entry's payout is looked up under each payout of its partner and currency.
    prog, (p, q) = await setup(client, admin, partners=2, min_payout="0.00")
    payouts = {}
    for _ in range(2):  # two runs, a payout each per partner
        own = await add_entry(app, p["id"], prog["id"], 1500)
        other = await add_entry(app, q["id"], prog["id"], 900)
        r = await client.post(
            "/v1/payout-runs",
            json={"as_of": rfc3339(ago(seconds=0)), "program_id": prog["id"]},
            headers={**finance, "Idempotency-Key": secrets.token_hex(8)},
        )
        assert r.status_code == 201, r.text
        by_partner = {x["partner_id"]: x["id"] for x in r.json()["payouts"]}
        payouts[own.id] = by_partner[p["id"]]
        payouts[other.id] = by_partner[q["id"]]
    unpaid = await add_entry(app, p["id"], prog["id"], 300)
    payouts[unpaid.id] = None
    shown = await entries(client, finance, program_id=prog["id"], limit="100")
    assert {uuid.UUID(e["id"]): e["payout_id"] for e in shown} == payouts
