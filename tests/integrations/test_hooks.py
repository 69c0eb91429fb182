"""Shops' webhooks end to end: signatures, the inbox, and one path for money."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select

from service.models import CommissionEntry, Integration, IntegrationDelivery, PromoCode
from tests.conftest import make_key
from tests.conversions.factories import add_link, add_promo, click_id, setup
from tests.helpers import assert_problem
from tests.integrations import payloads as p

SECRET = "whsec_5f3e7f1a9b2c4d6e8f0a1b2c3d4e5f6a"


async def connect(client, admin, program, provider, secret=SECRET, **extra):
    r = await client.post(
        "/v1/integrations",
        json={"program_id": program["id"], "provider": provider, "signing_secret": secret, **extra},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def shop(client, app, admin, provider, **program_overrides):
    program, partner = await setup(client, admin, **program_overrides)
    link = await add_link(app, program["id"], partner["id"])
    integration = await connect(client, admin, program, provider)
    return program, partner, link, integration


def path(integration):
    return f"/hooks/{integration['provider']}/{integration['id']}"


async def send_stripe(client, integration, event, secret=SECRET, **kw):
    body = p.dumps(event)
    return await client.post(
        path(integration),
        content=body,
        headers={"Stripe-Signature": p.stripe_header(secret, body, **kw)},
    )


async def send_shopify(client, integration, topic, payload, event_id=None):
    body = p.dumps(payload)
    return await client.post(
        path(integration),
        content=body,
        headers={
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": p.b64_signature(SECRET, body),
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
            "X-Shopify-Shop-Domain": "shop.myshopify.com",
        },
    )


async def send_woo(client, integration, topic, payload, body=None):
    body = body if body is not None else p.dumps(payload)
    return await client.post(
        path(integration),
        content=body,
        headers={
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Signature": p.b64_signature(SECRET, body),
            "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
            "X-WC-Webhook-ID": "15",
        },
    )


async def inbox(client, admin, integration):
    r = await client.get(f"/v1/integrations/{integration['id']}/deliveries", headers=admin)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def conversion(client, admin, conversion_id):
    r = await client.get(f"/v1/conversions/{conversion_id}", headers=admin)
    assert r.status_code == 200, r.text
    return r.json()


async def balance(app, partner_id):
    async with app.state.sessionmaker() as session:
        return await session.scalar(
            select(func.coalesce(func.sum(CommissionEntry.amount_minor), 0)).where(
                CommissionEntry.partner_id == uuid.UUID(partner_id)
            )
        )


# --- the resource ---------------------------------------------------------------


async def test_integration_resource_and_its_write_only_secret(client, app, admin):
    program, _ = await setup(client, admin)
    created = await connect(client, admin, program, "shopify", description="main shop")
    assert created["webhook_url"] == f"http://aff.test/hooks/shopify/{created['id']}"
    assert "signing_secret" not in created
    assert SECRET not in str(created)
    got = (await client.get(f"/v1/integrations/{created['id']}", headers=admin)).json()
    assert got == created
    listed = await client.get(f"/v1/integrations?program_id={program['id']}", headers=admin)
    assert [i["id"] for i in listed.json()["items"]] == [created["id"]]
    r = await client.patch(
        f"/v1/integrations/{created['id']}", json={"status": "disabled"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    r = await client.patch(
        f"/v1/integrations/{created['id']}", json={"status": None}, headers=admin
    )
    assert_problem(r, 422)
    async with app.state.sessionmaker() as session:
        row = await session.get(Integration, uuid.UUID(created["id"]))
        assert row is not None and SECRET.encode() not in row.secret_sealed
    merchant = await make_key(app, "merchant", program_ids=[uuid.UUID(program["id"])])
    assert_problem(await client.get("/v1/integrations", headers=merchant), 403)
    r = await client.post(
        "/v1/integrations",
        json={"program_id": str(uuid.uuid4()), "provider": "stripe", "signing_secret": SECRET},
        headers=admin,
    )
    assert assert_problem(r, 422)["errors"][0]["field"] == "program_id"


async def test_rotation_keeps_the_old_secret_for_the_grace_period(client, app, admin):
    _, _, _, integration = await shop(client, app, admin, "stripe")
    event = p.stripe_event("customer.created", {})
    r = await client.post(
        f"/v1/integrations/{integration['id']}/rotate-secret",
        json={"signing_secret": "whsec_new_secret_abcdef"},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["previous_secret_expires_at"] is not None
    assert (await send_stripe(client, integration, event)).status_code == 200
    assert (
        await send_stripe(
            client, integration, p.stripe_event("x.y", {}), secret="whsec_new_secret_abcdef"
        )
    ).status_code == 200
    await client.post(
        f"/v1/integrations/{integration['id']}/rotate-secret",
        json={"signing_secret": "whsec_third_secret_abc", "previous_valid_hours": 0},
        headers=admin,
    )
    assert_problem(await send_stripe(client, integration, p.stripe_event("x.y", {})), 401)


# --- Stripe -----------------------------------------------------------------------


async def test_stripe_sale_matches_the_same_sale_posted_to_the_api(client, app, admin):
    _, partner, link, integration = await shop(client, app, admin, "stripe")
    token = click_id(app, link)
    event = p.stripe_event(
        "checkout.session.completed", p.checkout_session(client_reference_id=token)
    )
    r = await send_stripe(client, integration, event)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "processed" and answer["reason"] is None
    via_hook = await conversion(client, admin, answer["conversion_id"])
    assert via_hook["amount"] == "100.00" and via_hook["currency"] == "USD"
    assert via_hook["attribution"]["method"] == "click"
    assert [(e["kind"], e["amount"]) for e in via_hook["commissions"]] == [("commission", "10.00")]

    # The same sale through the API, into a twin program: the same money, the same way.
    twin, twin_partner = await setup(client, admin, partner=partner)
    twin_link = await add_link(app, twin["id"], twin_partner["id"])
    merchant = await make_key(app, "merchant", program_ids=[uuid.UUID(twin["id"])])
    r = await client.post(
        "/v1/conversions",
        json={
            "program_id": twin["id"],
            "type": "sale",
            "order_id": via_hook["order_id"],
            "amount": "100.00",
            "currency": "USD",
            "occurred_at": via_hook["occurred_at"],
            "click_id": click_id(app, twin_link),
            "customer_id": "cus_NZKoSNL6vB4d6i",
            "customer_email": "jenny.rosen@example.com",
        },
        headers=merchant,
    )
    assert r.status_code == 201, r.text
    via_api = r.json()
    for key in ("amount", "program_amount", "status", "customer_id", "occurred_at"):
        assert via_api[key] == via_hook[key]
    assert via_api["attribution"]["method"] == via_hook["attribution"]["method"]
    strip = lambda es: [(e["kind"], e["amount"], e["available_at"]) for e in es]  # noqa: E731
    assert strip(via_api["commissions"]) == strip(via_hook["commissions"])

    # Redelivered: one conversion.
    again = (await send_stripe(client, integration, event)).json()
    assert again == {
        "status": "processed",
        "reason": "duplicate",
        "conversion_id": answer["conversion_id"],
    }
    items = await inbox(client, admin, integration)
    assert [(d["topic"], d["status"], d["attempts"]) for d in items] == [
        ("checkout.session.completed", "processed", 2)
    ]


async def test_stripe_promotion_code_id_attributes_by_its_promo_code(client, app, admin):
    program, partner, _, integration = await shop(client, app, admin, "stripe")
    code = await add_promo(
        app, program["id"], partner["id"], external_ids=["promo_1MiM6KLkdIwHu7ix"]
    )
    # No click and no metadata: the session names the promotion code the customer redeemed.
    session = p.checkout_session(
        discounts=[{"coupon": None, "promotion_code": "promo_1MiM6KLkdIwHu7ix"}]
    )
    r = await send_stripe(
        client, integration, p.stripe_event("checkout.session.completed", session)
    )
    answer = r.json()
    assert r.status_code == 200 and answer["status"] == "processed", r.text
    got = await conversion(client, admin, answer["conversion_id"])
    assert got["promo_code"] == code
    assert got["attribution"]["method"] == "promo_code"
    assert got["attribution"]["partner_id"] == partner["id"]
    assert [(e["kind"], e["amount"]) for e in got["commissions"]] == [("commission", "10.00")]
    async with app.state.sessionmaker() as db:
        uses = await db.scalar(select(PromoCode.uses).where(PromoCode.code == code))
    assert uses == 1

    # The breakdown's expanded discount names it too.
    session = p.checkout_session(
        total_details={
            "amount_discount": 0,
            "amount_shipping": 500,
            "amount_tax": 800,
            "breakdown": {
                "discounts": [
                    {
                        "amount": 0,
                        "discount": {
                            "object": "discount",
                            "promotion_code": {"id": "promo_1MiM6KLkdIwHu7ix"},
                        },
                    }
                ],
                "taxes": [],
            },
        }
    )
    r = await send_stripe(
        client, integration, p.stripe_event("checkout.session.completed", session)
    )
    got = await conversion(client, admin, r.json()["conversion_id"])
    assert (
        got["attribution"]["method"] == "promo_code"
        and got["attribution"]["partner_id"] == partner["id"]
    )


async def test_stripe_unknown_promotion_code_id_is_no_promo_code(client, app, admin):
    program, partner, _, integration = await shop(client, app, admin, "stripe")
    await add_promo(app, program["id"], partner["id"], external_ids=["promo_known"])
    other, other_partner = await setup(client, admin)
    # Held by a promo code of another program: unknown here as well.
    await add_promo(app, other["id"], other_partner["id"], external_ids=["promo_elsewhere"])
    for promotion_code in ("promo_unknown", "promo_elsewhere"):
        session = p.checkout_session(discounts=[{"coupon": None, "promotion_code": promotion_code}])
        event = p.stripe_event("checkout.session.completed", session)
        r = await send_stripe(client, integration, event)
        answer = r.json()
        assert r.status_code == 200 and answer["status"] == "processed", r.text
        got = await conversion(client, admin, answer["conversion_id"])
        assert got["promo_code"] is None
        assert got["attribution"]["method"] is None
        reasons = {x["method"]: x["reason"] for x in got["attribution"]["reasons"]}
        assert reasons["promo_code"] == "no promo code sent"


async def test_stripe_bad_missing_and_stale_signatures_store_nothing(client, app, admin):
    _, _, _, integration = await shop(client, app, admin, "stripe")
    event = p.stripe_event("checkout.session.completed", p.checkout_session())
    body = p.dumps(event)
    assert_problem(await send_stripe(client, integration, event, secret="whsec_wrong_one"), 401)
    assert_problem(await client.post(path(integration), content=body), 401)
    assert_problem(await send_stripe(client, integration, event, t=int(time.time()) - 301), 401)
    assert_problem(
        await client.post(
            path(integration), content=b"{oops", headers={"Stripe-Signature": "t=1,v1=00"}
        ),
        401,
    )
    ok = await send_stripe(client, integration, event, extra=["v1=" + "ab" * 32])
    assert ok.status_code == 200 and ok.json()["status"] == "processed"
    assert len(await inbox(client, admin, integration)) == 1
    # Another provider's URL for this id is no integration.
    assert_problem(await client.post(f"/hooks/shopify/{integration['id']}", content=body), 404)


async def test_stripe_subscription_checkout_and_first_invoice_are_one_sale(client, app, admin):
    _, _partner, link, integration = await shop(client, app, admin, "stripe")
    inv = p.invoice(
        currency="usd",
        billing_reason="subscription_create",
        customer="cus_sub",
        total=2180,
        total_excluding_tax=2000,
        tax=180,
    )
    session = p.checkout_session(
        mode="subscription",
        invoice=inv["id"],
        payment_intent=None,
        customer="cus_sub",
        amount_total=2180,
        total_details={"amount_tax": 180, "amount_shipping": 0, "amount_discount": 0},
        client_reference_id=click_id(app, link),
    )
    first = (
        await send_stripe(
            client, integration, p.stripe_event("checkout.session.completed", session)
        )
    ).json()
    second = (await send_stripe(client, integration, p.stripe_event("invoice.paid", inv))).json()
    assert first["status"] == "processed" and first["reason"] is None
    assert second == {
        "status": "processed",
        "reason": "duplicate",
        "conversion_id": first["conversion_id"],
    }
    # The renewal is a sale of its own, the customer's attribution carrying it.
    renewal = p.invoice(currency="usd", customer="cus_sub", total_excluding_tax=2000)
    third = (await send_stripe(client, integration, p.stripe_event("invoice.paid", renewal))).json()
    assert third["status"] == "processed" and third["conversion_id"] != first["conversion_id"]
    got = await conversion(client, admin, third["conversion_id"])
    assert got["attribution"]["method"] == "customer" and got["amount"] == "20.00"


async def test_stripe_partial_refunds_are_prorated_on_the_base(client, app, admin):
    _, partner, link, integration = await shop(client, app, admin, "stripe")
    pi = "pi_refund_" + uuid.uuid4().hex[:8]
    session = p.checkout_session(payment_intent=pi, client_reference_id=click_id(app, link))
    sold = (
        await send_stripe(
            client, integration, p.stripe_event("checkout.session.completed", session)
        )
    ).json()
    ch = p.charge(payment_intent=pi, amount_refunded=2825)  # a quarter of the 113.00 charged
    r = (await send_stripe(client, integration, p.stripe_event("charge.refunded", ch))).json()
    assert r == {"status": "processed", "reason": None, "conversion_id": sold["conversion_id"]}
    got = await conversion(client, admin, sold["conversion_id"])
    assert got["refunded_amount"] == "25.00"  # a quarter of the 100.00 base
    assert await balance(app, partner["id"]) == 750
    ch["amount_refunded"] = 11300
    r = (await send_stripe(client, integration, p.stripe_event("charge.refunded", ch))).json()
    assert r["status"] == "processed"
    assert (await conversion(client, admin, sold["conversion_id"]))["refunded_amount"] == "100.00"
    assert await balance(app, partner["id"]) == 0
    # A late event with a smaller running total refunds nothing more.
    ch["amount_refunded"] = 5650
    late = (await send_stripe(client, integration, p.stripe_event("charge.refunded", ch))).json()
    assert late["reason"] == "already refunded"


async def test_refund_before_its_sale_fails_then_replays(client, app, admin):
    _, partner, link, integration = await shop(client, app, admin, "stripe")
    pi = "pi_late_" + uuid.uuid4().hex[:8]
    refund = p.stripe_event("charge.refunded", p.charge(payment_intent=pi, amount_refunded=11300))
    r = await send_stripe(client, integration, refund)
    assert r.status_code == 200
    assert r.json() == {"status": "failed", "reason": "unknown order", "conversion_id": None}
    session = p.checkout_session(payment_intent=pi, client_reference_id=click_id(app, link))
    sold = (
        await send_stripe(
            client, integration, p.stripe_event("checkout.session.completed", session)
        )
    ).json()
    [failed] = [d for d in await inbox(client, admin, integration) if d["status"] == "failed"]
    assert failed["topic"] == "charge.refunded" and failed["reason"] == "unknown order"
    r = await client.post(
        f"/v1/integrations/{integration['id']}/deliveries/{failed['id']}/replay", headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processed" and r.json()["attempts"] == 2
    assert r.json()["conversion_id"] == sold["conversion_id"]
    assert await balance(app, partner["id"]) == 0
    failed_only = await client.get(
        f"/v1/integrations/{integration['id']}/deliveries?status=failed", headers=admin
    )
    assert failed_only.json()["items"] == []


async def test_unused_events_and_a_disabled_integration_answer_200(client, app, admin):
    _, _partner, link, integration = await shop(client, app, admin, "stripe")
    r = await send_stripe(client, integration, p.stripe_event("customer.subscription.updated", {}))
    assert r.json() == {
        "status": "ignored",
        "reason": "event type customer.subscription.updated is not used",
        "conversion_id": None,
    }
    await client.patch(
        f"/v1/integrations/{integration['id']}", json={"status": "disabled"}, headers=admin
    )
    sale = p.stripe_event(
        "checkout.session.completed", p.checkout_session(client_reference_id=click_id(app, link))
    )
    r = await send_stripe(client, integration, sale)
    assert (
        r.status_code == 200
        and r.json()["status"] == "ignored"
        and "disabled" in r.json()["reason"]
    )
    assert_problem(await send_stripe(client, integration, sale, secret="whsec_wrong_one"), 401)
    held = next(
        d
        for d in await inbox(client, admin, integration)
        if d["topic"] == "checkout.session.completed"
    )
    replay = f"/v1/integrations/{integration['id']}/deliveries/{held['id']}/replay"
    assert_problem(await client.post(replay, headers=admin), 409)
    await client.patch(
        f"/v1/integrations/{integration['id']}", json={"status": "enabled"}, headers=admin
    )
    r = await client.post(replay, headers=admin)
    assert r.json()["status"] == "processed" and r.json()["conversion_id"]


async def test_oversized_and_non_json_bodies(client, app, admin):
    _, _, _, integration = await shop(client, app, admin, "woocommerce")
    big = b"{" + b" " * (app.state.settings.max_body_bytes + 10) + b"}"
    r = await client.post(path(integration), content=big, headers={"X-WC-Webhook-Signature": "x"})
    assert_problem(r, 413)
    r = await send_woo(client, integration, "order.created", None, body=b"{this is not json")
    body = assert_problem(r, 400)
    [stored] = await inbox(client, admin, integration)
    assert stored["id"] == body["delivery_id"] and stored["status"] == "failed"
    assert "not JSON" in stored["reason"]


# --- Shopify ----------------------------------------------------------------------


async def test_shopify_sale_refund_cancel(client, app, admin):
    _, partner, link, integration = await shop(client, app, admin, "shopify")
    order = p.shopify_order(
        landing_site=f"/tents?aff_click_id={click_id(app, link)}",
        processed_at=None,
        created_at=None,
    )
    event_id = str(uuid.uuid4())
    sold = (await send_shopify(client, integration, "orders/paid", order, event_id)).json()
    assert sold["status"] == "processed"
    got = await conversion(client, admin, sold["conversion_id"])
    assert got["amount"] == "398.00" and got["order_id"] == str(order["id"])
    assert got["attribution"]["method"] == "click"
    # The same event id again (another subscription of the one event): one conversion.
    dup = (await send_shopify(client, integration, "orders/paid", order, event_id)).json()
    assert dup["reason"] == "duplicate"
    refund = p.shopify_refund(order["id"], ["99.50"])
    r = (await send_shopify(client, integration, "refunds/create", refund)).json()
    assert r["status"] == "processed"
    assert (await conversion(client, admin, sold["conversion_id"]))["refunded_amount"] == "99.50"
    assert await balance(app, partner["id"]) == 3980 - 995
    r = (
        await send_shopify(
            client,
            integration,
            "orders/cancelled",
            {**order, "cancelled_at": "2026-11-22T10:00:00-05:00"},
        )
    ).json()
    assert r["status"] == "processed"
    assert (await conversion(client, admin, sold["conversion_id"]))["status"] == "rejected"
    assert await balance(app, partner["id"]) == 0
    ignored = (await send_shopify(client, integration, "products/update", {"id": 1})).json()
    assert ignored["status"] == "ignored"
    statuses = [d["status"] for d in await inbox(client, admin, integration)]
    assert statuses == ["processed", "processed", "processed", "ignored"]


async def test_shopify_bad_signature(client, app, admin):
    _, _, _, integration = await shop(client, app, admin, "shopify")
    body = p.dumps(p.shopify_order())
    r = await client.post(
        path(integration),
        content=body,
        headers={
            "X-Shopify-Topic": "orders/paid",
            "X-Shopify-Hmac-Sha256": p.b64_signature("other-secret", body),
        },
    )
    assert_problem(r, 401)
    async with app.state.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(IntegrationDelivery)
            .where(IntegrationDelivery.integration_id == uuid.UUID(integration["id"]))
        )
    assert count == 0


# --- WooCommerce ----------------------------------------------------------------


async def test_woocommerce_ping_sale_refunds_and_cancel(client, app, admin):
    _, partner, link, integration = await shop(client, app, admin, "woocommerce")
    ping = await client.post(
        path(integration),
        content=b"webhook_id=15",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert ping.status_code == 200 and ping.json()["reason"] == "webhook ping"
    order = p.woo_order(
        total="120.00",
        total_tax="10.00",
        shipping_total="10.00",
        meta_data=[{"id": 7, "key": "aff_click_id", "value": click_id(app, link)}],
        customer_id=5,
        date_paid_gmt=datetime.now(UTC).replace(tzinfo=None, microsecond=0).isoformat(),
    )
    created = (await send_woo(client, integration, "order.created", order)).json()
    assert created["status"] == "processed"
    got = await conversion(client, admin, created["conversion_id"])
    assert got["amount"] == "100.00" and got["attribution"]["method"] == "click"
    # Every save of the order fires order.updated: still one sale.
    order["status"] = "completed"
    again = (await send_woo(client, integration, "order.updated", order)).json()
    assert again == {
        "status": "processed",
        "reason": "duplicate",
        "conversion_id": created["conversion_id"],
    }
    order["refunds"] = [{"id": 101, "reason": "", "total": "-30.00"}]
    r = (await send_woo(client, integration, "order.updated", order)).json()
    assert r["status"] == "processed"
    assert (await conversion(client, admin, created["conversion_id"]))["refunded_amount"] == "25.00"
    order["refunds"].append({"id": 102, "reason": "", "total": "-12.00"})
    r = (await send_woo(client, integration, "order.updated", order)).json()
    assert r["status"] == "processed" and r["reason"] == "duplicate"  # 101 seen, 102 new
    assert (await conversion(client, admin, created["conversion_id"]))["refunded_amount"] == "35.00"
    assert await balance(app, partner["id"]) == 650
    order["status"] = "cancelled"
    r = (await send_woo(client, integration, "order.updated", order)).json()
    assert r["status"] == "processed"
    assert (await conversion(client, admin, created["conversion_id"]))["status"] == "rejected"
    assert await balance(app, partner["id"]) == 0
    pending = (
        await send_woo(client, integration, "order.created", p.woo_order(status="pending"))
    ).json()
    assert pending["status"] == "ignored"


async def test_zero_decimal_sale_through_a_shop(client, app, admin):
    _, _partner, link, integration = await shop(client, app, admin, "stripe", currency="JPY")
    session = p.checkout_session(
        currency="jpy",
        amount_total=5000,
        client_reference_id=click_id(app, link),
        total_details={"amount_tax": 455, "amount_shipping": 0, "amount_discount": 0},
    )
    sold = (
        await send_stripe(
            client, integration, p.stripe_event("checkout.session.completed", session)
        )
    ).json()
    got = await conversion(client, admin, sold["conversion_id"])
    assert got["amount"] == "4545" and got["currency"] == "JPY"
    assert [e["amount"] for e in got["commissions"]] == ["454"]  # 454.5, half-even
    assert Decimal(got["amount"]) == Decimal(4545)
