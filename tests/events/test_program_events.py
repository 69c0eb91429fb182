"""The partner program's changes are announced too, and the worker pays click bounties."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from standardwebhooks import Webhook

from service.jobs.worker import JOBS, Worker
from service.kit.time import utc_now
from tests.conftest import serving, settings_for_tests
from tests.conversions.factories import sale
from tests.events.receiver import receiving
from tests.partnering.factories import member
from tests.partnering.test_bounties import bounties, put_rollup, world
from tests.partnering.test_deals import deal
from tests.partnering.test_disputes import claim


@pytest.fixture(scope="module")
async def served(database_url):
    settings = settings_for_tests(
        worker=True,
        webhook_allow_private=True,
        webhook_retry_schedule="0.2,0.2",
        worker_poll_seconds=0.05,
        application_limit="1000/minute",
    )
    async with serving(settings, database_url) as s:
        yield s


async def _endpoint(client, admin, url, events, program_id):
    r = await client.post(
        "/v1/webhook-endpoints",
        json={"url": url, "events": events, "program_id": program_id},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return r.json()


def _data(received) -> dict:
    return json.loads(received.body)["data"]


async def test_applications_deals_disputes_and_adjustments_are_announced(client, app, admin):
    program, partner, key = await member(client, admin, app)
    with receiving() as rx:
        hook = await _endpoint(
            client,
            admin,
            rx.url,
            [
                "application.created",
                "deal.created",
                "deal.approved",
                "dispute.created",
                "dispute.resolved",
                "commission.created",
            ],
            program["id"],
        )
        r = await client.post(
            f"/v1/programs/{program['id']}/applications",
            json={"name": "Blog", "email": f"{uuid.uuid4().hex[:8]}@blog.example"},
        )
        assert r.status_code == 201, r.text
        application = r.json()
        r = await client.post("/v1/deals", json=deal(program), headers=key)
        assert r.status_code == 201, r.text
        registered = r.json()
        r = await client.post(
            f"/v1/deals/{registered['id']}/approve", json={"reason": "ours"}, headers=admin
        )
        assert r.status_code == 200, r.text
        s = sale(program, amount="100.00")
        assert (await client.post("/v1/conversions", json=s, headers=admin)).status_code == 201
        r = await client.post("/v1/disputes", json=claim(program, s["order_id"]), headers=key)
        assert r.status_code == 201, r.text
        dispute = r.json()
        r = await client.post(
            f"/v1/disputes/{dispute['id']}/resolve",
            json={"outcome": "accepted", "reason": "our coupon"},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            "/v1/adjustments",
            json={
                "partner_id": partner["id"],
                "program_id": program["id"],
                "amount": "5.00",
                "currency": program["currency"],
                "reason": "launch bonus",
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        adjustment = r.json()
        await rx.wait_for(1, type_="dispute.resolved")
        await rx.wait_for(2, type_="commission.created")
    assert _data(rx.of_type("application.created")[0])["id"] == application["id"]
    assert _data(rx.of_type("deal.created")[0])["id"] == registered["id"]
    assert _data(rx.of_type("deal.approved")[0])["status"] == "approved"
    assert _data(rx.of_type("dispute.created")[0])["id"] == dispute["id"]
    resolved = _data(rx.of_type("dispute.resolved")[0])
    assert resolved["status"] == "accepted" and resolved["reason"] == "our coupon"
    kinds = {(_data(g)["kind"], _data(g)["id"]) for g in rx.of_type("commission.created")}
    assert ("adjustment", adjustment["id"]) in kinds
    assert any(kind == "commission" for kind, _ in kinds)  # the sale the dispute moved
    received = rx.of_type("deal.created")[0]
    Webhook(hook["secret"]).verify(received.body, received.headers)


CLICK_TERMS = {
    "rules": [{"event": "click", "type": "flat", "amount": "0.05"}],
    "hold_days": 0,
}


async def test_the_worker_pays_ended_days_click_bounties(client, app, admin):
    _, partner, link = await world(client, admin, app, CLICK_TERMS, "UTC")
    yesterday = (utc_now() - timedelta(days=1)).replace(hour=10, minute=0, second=0)
    await put_rollup(app, link, yesterday.replace(tzinfo=None).isoformat(), 4)
    [job] = [j for j in JOBS if j.name == "click_bounties"]
    worker = Worker(app.state.sessionmaker, app.state.settings, jobs=[job])
    await worker.start()
    try:
        for _ in range(200):
            paid = await bounties(app, partner)
            if paid:
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert [(amount, clicks) for _, amount, clicks in paid] == [(Decimal("0.20"), 4)]
