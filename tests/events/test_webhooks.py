"""Webhook endpoints end to end: a real receiver on 127.0.0.1, the worker in the app."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from standardwebhooks import Webhook

from service.events.outbox import write_pending
from service.kit.time import utc_now
from service.models import Event, WebhookEndpoint
from service.partners import service as partners
from service.partners.schemas import PartnerCreate
from tests.conftest import make_key, serving, settings_for_tests
from tests.conversions.factories import TEN_PERCENT, add_promo, sale, setup
from tests.events.receiver import receiving
from tests.factories import unique
from tests.helpers import assert_problem, free_port

SCHEDULE = "0.2,0.2"


@pytest.fixture(scope="module")
async def served(database_url):
    settings = settings_for_tests(
        worker=True,
        webhook_allow_private=True,
        webhook_retry_schedule=SCHEDULE,
        worker_poll_seconds=0.05,
    )
    async with serving(settings, database_url) as s:
        yield s


async def _endpoint(client, admin, url, events, program_id=None):
    r = await client.post(
        "/v1/webhook-endpoints",
        json={"url": url, "events": events, "program_id": program_id},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _selling(client, app, admin):
    program, partner = await setup(
        client, admin, terms={**TEN_PERCENT, "hold_days": 0}, hold_days=0
    )
    code = await add_promo(app, program["id"], partner["id"])
    merchant = await make_key(app, "merchant", program_ids=[uuid.UUID(program["id"])])
    return program, partner, code, merchant


async def _deliveries(client, admin, endpoint_id):
    r = await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=admin)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def _settled(client, admin, endpoint_id, count, status="succeeded", within=15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        items = await _deliveries(client, admin, endpoint_id)
        if len([d for d in items if d["status"] == status]) >= count:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries not {status}: {items}")


async def test_a_conversion_is_delivered_signed_with_its_get_shape(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    with receiving() as rx:
        ep = await _endpoint(client, admin, f"{rx.url}/hook", ["conversion.created"], program["id"])
        assert ep["status"] == "enabled" and ep["secret"].startswith("whsec_")
        r = await client.post(
            "/v1/conversions", json=sale(program, promo_code=code), headers=merchant
        )
        assert r.status_code == 201, r.text
        got = await rx.wait_for(1)
    request = got[0]
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    payload = Webhook(ep["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "conversion.created"
    assert request.headers["webhook-id"]
    shown = (await client.get(f"/v1/conversions/{r.json()['id']}", headers=admin)).json()
    assert payload["data"] == shown
    assert payload["data"]["commissions"][0]["amount"] == "10.00"
    items = await _settled(client, admin, ep["id"], 1)
    assert items[0]["event_id"] == request.headers["webhook-id"]
    assert items[0]["attempts"][0]["response_status"] == 200
    assert items[0]["attempt_count"] == 1 and items[0]["next_attempt_at"] is None
    # The secret is shown once only.
    assert (
        "secret"
        not in (await client.get(f"/v1/webhook-endpoints/{ep['id']}", headers=admin)).json()
    )


async def test_retries_keep_the_same_webhook_id(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    with receiving(statuses=[500, 502, 204]) as rx:
        ep = await _endpoint(client, admin, rx.url, ["conversion.created"], program["id"])
        r = await client.post(
            "/v1/conversions", json=sale(program, promo_code=code), headers=merchant
        )
        assert r.status_code == 201
        got = await rx.wait_for(3)
        items = await _settled(client, admin, ep["id"], 1)
    assert len({g.headers["webhook-id"] for g in got}) == 1
    assert len({g.body for g in got}) == 1
    for g in got:
        Webhook(ep["secret"]).verify(g.body, g.headers)
    [d] = items
    assert d["attempt_count"] == 3
    assert [a["response_status"] for a in d["attempts"]] == [500, 502, 204]
    assert d["attempts"][0]["error"] == "HTTP 500"


async def test_dead_after_the_schedule_then_retried_by_hand(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    with receiving(statuses=[503]) as rx:
        ep = await _endpoint(client, admin, rx.url, ["conversion.created"], program["id"])
        await client.post("/v1/conversions", json=sale(program, promo_code=code), headers=merchant)
        [d] = await _settled(client, admin, ep["id"], 1, status="dead")
        # One attempt and one per delay of the schedule.
        assert d["attempt_count"] == len(SCHEDULE.split(",")) + 1
        assert d["next_attempt_at"] is None
        rx.statuses = [200]
        r = await client.post(
            f"/v1/webhook-endpoints/{ep['id']}/deliveries/{d['id']}/retry", headers=admin
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "pending"
        [d] = await _settled(client, admin, ep["id"], 1)
    assert d["attempt_count"] == len(SCHEDULE.split(",")) + 2
    r = await client.post(
        f"/v1/webhook-endpoints/{ep['id']}/deliveries/{uuid.uuid4()}/retry", headers=admin
    )
    assert_problem(r, 404)


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    with receiving(statuses=[302, 200]) as rx:
        ep = await _endpoint(client, admin, rx.url, ["conversion.created"], program["id"])
        await client.post("/v1/conversions", json=sale(program, promo_code=code), headers=merchant)
        [d] = await _settled(client, admin, ep["id"], 1)
        assert len(rx.all()) == 2  # both to the endpoint: the Location was never fetched
    assert d["attempts"][0]["response_status"] == 302
    assert "redirects are not followed" in d["attempts"][0]["error"]


async def _events_of_order(app, order_id):
    async with app.state.sessionmaker() as session:
        return await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.type == "conversion.created", Event.data["order_id"].astext == order_id)
        )


async def test_a_conversion_refused_with_409_emits_nothing(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    with receiving() as rx:
        ep = await _endpoint(client, admin, rx.url, ["conversion.created"], program["id"])
        body = sale(program, promo_code=code)
        assert (
            await client.post("/v1/conversions", json=body, headers=merchant)
        ).status_code == 201
        again = await client.post("/v1/conversions", json=body, headers=merchant)
        assert again.status_code == 200  # replayed: the same conversion, no second event
        other = await client.post(
            "/v1/conversions", json={**body, "amount": "999.00"}, headers=merchant
        )
        assert_problem(other, 409)
        await _settled(client, admin, ep["id"], 1)
        await asyncio.sleep(0.3)
        assert len(rx.all()) == 1
    assert await _events_of_order(app, body["order_id"]) == 1


async def test_a_rolled_back_transaction_emits_nothing(client, app, admin):
    ep = await _endpoint(client, admin, f"http://127.0.0.1:{free_port()}/", ["partner.created"])
    body = PartnerCreate(name=unique("Gone "), email=f"{unique('g')}@partners.example")
    from service.events.announce import SYSTEM

    async with app.state.sessionmaker() as session:
        partner = await partners.create_partner(session, body, SYSTEM)
        await write_pending(session)
        # Written in this transaction...
        inside = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.data["id"].astext == str(partner.id))
        )
        assert inside == 1
        await session.rollback()
    # ...and gone with it.
    async with app.state.sessionmaker() as session:
        after = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.data["id"].astext == str(partner.id))
        )
    assert after == 0
    r = await client.patch(
        f"/v1/webhook-endpoints/{ep['id']}", json={"status": "disabled"}, headers=admin
    )
    assert r.json()["status"] == "disabled" and r.json()["disabled_reason"] == "disabled by hand"


async def test_a_program_endpoint_gets_only_its_programs_events(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    other, _, other_code, other_merchant = await _selling(client, app, admin)
    with receiving() as rx:
        await _endpoint(client, admin, rx.url, ["*"], program["id"])
        await client.post(
            "/v1/conversions", json=sale(other, promo_code=other_code), headers=other_merchant
        )
        r = await client.post(
            "/v1/conversions", json=sale(program, promo_code=code), headers=merchant
        )
        await rx.wait_for(2)  # conversion.created and commission.created
        await asyncio.sleep(0.3)
        bodies = [json.loads(g.body) for g in rx.all()]
    assert {b["type"] for b in bodies} == {"conversion.created", "commission.created"}
    assert all(b["data"].get("program_id") == program["id"] for b in bodies)
    assert any(b["data"]["id"] == r.json()["id"] for b in bodies)


async def test_every_change_of_a_conversion_and_its_ledger_is_announced(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    with receiving() as rx:
        await _endpoint(client, admin, rx.url, ["*"], program["id"])
        body = sale(program, promo_code=code)
        conv = (await client.post("/v1/conversions", json=body, headers=merchant)).json()
        r = await client.post(
            "/v1/refunds",
            json={
                "program_id": program["id"],
                "order_id": body["order_id"],
                "refund_id": "r1",
                "amount": "40.00",
            },
            headers=merchant,
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            f"/v1/conversions/{conv['id']}/review", json={"reason": "check"}, headers=admin
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            f"/v1/conversions/{conv['id']}/reject", json={"reason": "fraud"}, headers=admin
        )
        assert r.status_code == 200, r.text
        await rx.wait_for(1, type_="conversion.rejected")
        await asyncio.sleep(0.3)
        types = [json.loads(g.body)["type"] for g in rx.all()]
    assert types.count("conversion.created") == 1
    assert types.count("refund.created") == 1
    assert types.count("conversion.held") == 1
    assert types.count("conversion.rejected") == 1
    # The commission, the refund's reversal, the rejection's reversal: in no promised order
    # (deliveries claimed together go out together).
    kinds = [json.loads(g.body)["data"]["kind"] for g in rx.of_type("commission.created")]
    assert sorted(kinds) == ["commission", "reversal", "reversal"]
    refund = json.loads(rx.of_type("refund.created")[0].body)["data"]
    assert refund["refund_id"] == "r1" and refund["reversals"][0]["amount"] == "-4.00"


async def test_payouts_and_partners_are_announced(client, app, admin, finance):
    program, partner, code, merchant = await _selling(client, app, admin)
    with receiving() as rx:
        await _endpoint(client, admin, rx.url, ["payout_run.created", "payout.paid"], program["id"])
        await _endpoint(client, admin, rx.url, ["partner.updated"])
        await client.post(
            "/v1/conversions",
            json=sale(program, promo_code=code, amount="1000.00"),
            headers=merchant,
        )
        r = await client.post(
            "/v1/payout-runs",
            json={"as_of": utc_now().isoformat(), "program_id": program["id"]},
            headers={**finance, "Idempotency-Key": unique("run")},
        )
        assert r.status_code == 201, r.text
        [payout] = r.json()["payouts"]
        r = await client.post(
            f"/v1/payouts/{payout['id']}/paid", json={"reference": "tx-1"}, headers=finance
        )
        assert r.status_code == 200, r.text
        r = await client.patch(
            f"/v1/partners/{partner['id']}", json={"name": unique("Renamed ")}, headers=admin
        )
        assert r.status_code == 200
        await rx.wait_for(1, type_="payout.paid")
        await rx.wait_for(1, type_="partner.updated")
    run = json.loads(rx.of_type("payout_run.created")[0].body)["data"]
    assert run["payouts"][0]["id"] == payout["id"]
    paid = json.loads(rx.of_type("payout.paid")[0].body)["data"]
    assert paid["status"] == "paid" and paid["reference"] == "tx-1"
    renamed = [json.loads(g.body)["data"] for g in rx.of_type("partner.updated")]
    assert any(p["id"] == partner["id"] and p["name"] == r.json()["name"] for p in renamed)


async def test_a_rotated_secret_signs_beside_the_new_one_for_a_day(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    with receiving() as rx:
        ep = await _endpoint(client, admin, rx.url, ["conversion.created"], program["id"])
        r = await client.post(f"/v1/webhook-endpoints/{ep['id']}/rotate-secret", headers=admin)
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert rotated["secret"] != ep["secret"]
        await client.post("/v1/conversions", json=sale(program, promo_code=code), headers=merchant)
        [got] = await rx.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(ep["secret"]).verify(got.body, got.headers)
    Webhook(rotated["secret"]).verify(got.body, got.headers)
    shown = (await client.get(f"/v1/webhook-endpoints/{ep['id']}", headers=admin)).json()
    assert shown["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]


async def test_an_endpoint_failing_for_five_days_is_disabled_and_says_so(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    with receiving(statuses=[500]) as rx:
        ep = await _endpoint(client, admin, rx.url, ["conversion.created"], program["id"])
        async with app.state.sessionmaker() as session:
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == uuid.UUID(ep["id"]))
                .values(failing_since=utc_now() - timedelta(days=5, minutes=1))
            )
            await session.commit()
        await client.post("/v1/conversions", json=sale(program, promo_code=code), headers=merchant)
        await rx.wait_for(1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while loop.time() < deadline:
            shown = (await client.get(f"/v1/webhook-endpoints/{ep['id']}", headers=admin)).json()
            if shown["status"] == "disabled":
                break
            await asyncio.sleep(0.05)
        assert shown["status"] == "disabled"
        assert "5 days" in shown["disabled_reason"]
        # A disabled endpoint is sent nothing more, and gets no new events.
        await client.post("/v1/conversions", json=sale(program, promo_code=code), headers=merchant)
        await asyncio.sleep(0.6)
        assert len(rx.all()) == 1
        # Failing receivers do not make the service unready.
        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert 'affiliate_event_deliveries_total{kind="endpoint",outcome="failed"}' in metrics
    assert "affiliate_event_delivery_seconds_bucket" in metrics
    assert "affiliate_outbox_lag_seconds" in metrics
    r = await client.patch(
        f"/v1/webhook-endpoints/{ep['id']}", json={"status": "enabled"}, headers=admin
    )
    assert r.json()["status"] == "enabled" and r.json()["disabled_reason"] is None


async def test_endpoints_are_for_admins_and_validated(client, app, admin, finance):
    r = await client.get("/v1/webhook-endpoints", headers=finance)
    assert_problem(r, 403)
    r = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:8080", "events": ["nope"]},
        headers=admin,
    )
    assert "events" in [e["field"] for e in assert_problem(r, 422)["errors"]]
    r = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:8080", "events": ["*"], "program_id": str(uuid.uuid4())},
        headers=admin,
    )
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["program_id"]
    r = await client.patch(
        f"/v1/webhook-endpoints/{uuid.uuid4()}", json={"status": "disabled"}, headers=admin
    )
    assert_problem(r, 404)
    listed = (await client.get("/v1/webhook-endpoints?limit=1", headers=admin)).json()
    assert len(listed["items"]) == 1 and listed["next_cursor"]


async def test_serve_runs_the_worker_unless_turned_off(database_url):
    async with serving(settings_for_tests(), database_url) as off:
        assert off.app.state.worker is None


async def test_an_unreadable_secret_is_never_sent_unsigned(client, app, admin):
    program, _, code, merchant = await _selling(client, app, admin)
    with receiving() as rx:
        ep = await _endpoint(client, admin, rx.url, ["conversion.created"], program["id"])
        async with app.state.sessionmaker() as session:
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == uuid.UUID(ep["id"]))
                .values(secret_sealed=b"\0" * 40)
            )
            await session.commit()
        await client.post("/v1/conversions", json=sale(program, promo_code=code), headers=merchant)
        [d] = await _settled(client, admin, ep["id"], 1, status="dead")
        assert rx.all() == []
    assert d["last_error"].startswith("not sent: the signing secret cannot be unsealed")
    await client.patch(
        f"/v1/webhook-endpoints/{ep['id']}", json={"status": "disabled"}, headers=admin
    )
