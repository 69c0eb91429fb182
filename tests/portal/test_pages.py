"""Pages whose states the browser walk does not reach."""

from __future__ import annotations

import re

from sqlalchemy import update

from service.models import Payout
from tests.factories import create_partner, create_program
from tests.payouts.factories import add_entry, ago
from tests.portal import flows
from tests.portal.flows import signed_in


async def test_reconciliation_shows_a_mismatch_in_red(client, admin, finance, app):
    program = await create_program(client, admin, hold_days=0, min_payout="1.00")
    partner = await create_partner(client, admin)
    await add_entry(app, partner["id"], program["id"], 2500)
    r = await client.post(
        "/v1/payout-runs",
        json={"as_of": ago(seconds=1).isoformat(), "program_id": program["id"]},
        headers={**finance, "Idempotency-Key": flows.unique("run-")},
    )
    assert r.status_code == 201, r.text
    payout_id = r.json()["payouts"][0]["id"]
    who = await signed_in(client, await flows.portal_link(client, admin, role="finance"))
    page = await client.get(
        "/portal/finance/reconciliation", params={"program_id": program["id"]}, headers=who
    )
    assert 'id="verdict">Balanced' in page.text.replace("\n", "")
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Payout).where(Payout.id == payout_id).values(amount_minor=2600)
        )
        await session.commit()
    page = await client.get(
        "/portal/finance/reconciliation", params={"program_id": program["id"]}, headers=who
    )
    assert page.status_code == 200
    assert re.search(r'class="mismatch" role="alert" id="verdict"', page.text)
    assert re.search(rf'<tr class="mismatch"><th scope="row"><code>{payout_id}</code>', page.text)
    assert "$26.00" in page.text and "$25.00" in page.text


async def test_a_failed_payout_releases_its_entries(client, admin, finance, app):
    program = await create_program(client, admin, hold_days=0, min_payout="1.00")
    partner = await create_partner(client, admin)
    await add_entry(app, partner["id"], program["id"], 1000)
    who = await signed_in(client, await flows.portal_link(client, admin, role="finance"))
    preview = await client.get("/portal/finance", params={"program_id": program["id"]}, headers=who)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', preview.text))
    r = await client.post("/portal/finance/runs", data=fields, headers=who)
    assert r.status_code == 303
    run = await client.get(r.headers["location"], headers=who)
    payout_id = re.search(r'data-payout-id="([0-9a-f-]+)"', run.text).group(1)  # type: ignore[union-attr]
    token = fields["csrf_token"]
    r = await client.post(
        f"/portal/finance/payouts/{payout_id}/failed",
        data={"csrf_token": token, "reason": ""},
        headers=who,
    )
    assert r.status_code == 422 and "reason" in r.text
    r = await client.post(
        f"/portal/finance/payouts/{payout_id}/failed",
        data={"csrf_token": token, "reason": "account closed"},
        headers=who,
    )
    assert r.status_code == 303
    got = await client.get(f"/v1/payouts/{payout_id}", headers=finance)
    assert got.json()["status"] == "failed" and got.json()["failure_reason"] == "account closed"
    balance = await client.get(
        "/v1/balances", params={"program_id": program["id"]}, headers=finance
    )
    assert balance.json()["items"][0]["payable"] == "10.00"
