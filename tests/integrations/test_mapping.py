"""The providers' pure mapping and signature checks, against their documented payloads."""

from __future__ import annotations

import time
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.integrations import shopify, stripe, woocommerce
from service.integrations.hooks import _scaled_refund
from service.integrations.plans import PayloadInvalid, load_json
from tests.integrations import payloads as p

SECRET = "whsec_test_secret_0123456789"


# --- signatures ---------------------------------------------------------------


def test_stripe_signature_good_bad_missing_old_and_several_v1():
    body = b'{"id": "evt_1", "object": "event"}'
    now = time.time()
    stripe.verify([SECRET], {"stripe-signature": p.stripe_header(SECRET, body)}, body, now)
    # Stripe sends one v1 per active secret: any one matching is enough.
    several = p.stripe_header(SECRET, body, extra=["v1=" + "0" * 64, "v0=abc"])
    stripe.verify([SECRET], {"stripe-signature": several}, body, now)
    bad = {"stripe-signature": p.stripe_header("whsec_other", body)}
    with pytest.raises(stripe.SignatureInvalid, match="no v1"):
        stripe.verify([SECRET], bad, body, now)
    with pytest.raises(stripe.SignatureInvalid, match="missing"):
        stripe.verify([SECRET], {}, body, now)
    old = {"stripe-signature": p.stripe_header(SECRET, body, t=int(now) - 301)}
    with pytest.raises(stripe.SignatureInvalid, match="300s"):
        stripe.verify([SECRET], old, body, now)
    # Within the tolerance either way.
    stripe.verify(
        [SECRET], {"stripe-signature": p.stripe_header(SECRET, body, t=int(now) - 299)}, body, now
    )
    with pytest.raises(stripe.SignatureInvalid):
        stripe.verify([SECRET], {"stripe-signature": "t=abc,v1=zz"}, body, now)
    # A body changed by one byte fails.
    header = {"stripe-signature": p.stripe_header(SECRET, body)}
    with pytest.raises(stripe.SignatureInvalid):
        stripe.verify([SECRET], header, body + b" ", now)
    # The previous secret, during a rotation, verifies too.
    stripe.verify(["whsec_new", SECRET], header, body, now)


@pytest.mark.parametrize("module", [shopify, woocommerce])
def test_base64_signatures(module):
    body = b'{"id": 1}'
    good = {module.SIGNATURE_HEADER: p.b64_signature(SECRET, body)}
    module.verify([SECRET], good, body, time.time())
    with pytest.raises(module.SignatureInvalid):
        module.verify([SECRET], good, body + b"x", time.time())
    with pytest.raises(module.SignatureInvalid):
        module.verify([SECRET], {}, body, time.time())
    with pytest.raises(module.SignatureInvalid):
        module.verify([SECRET], {module.SIGNATURE_HEADER: "bm90IGl0"}, body, time.time())


def test_woocommerce_ping_is_only_the_unsigned_form_body():
    assert woocommerce.is_ping({}, b"webhook_id=15")
    assert not woocommerce.is_ping({woocommerce.SIGNATURE_HEADER: "x"}, b"webhook_id=15")
    assert not woocommerce.is_ping({}, b'{"webhook_id": 15}')
    assert not woocommerce.is_ping({}, b"webhook_id=15&x=1")


# --- Stripe -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("USD", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("UGX", 0),
        ("XOF", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("TND", 3),
        ("ISK", 2),
        ("HUF", 2),
        ("TWD", 2),
        ("EUR", 2),
    ],
)
def test_stripe_minor_units_follow_stripe_not_iso(code, exponent):
    assert stripe.stripe_exponent(code) == exponent


def test_session_amount_excludes_tax_and_shipping():
    event = p.stripe_event(
        "checkout.session.completed",
        p.checkout_session(client_reference_id="c1.click", metadata={"aff_promo_code": "SPRING"}),
    )
    sale = stripe.plan(event, accept_test_events=False).sale
    assert sale is not None
    assert sale.amount == Decimal("100.00") and sale.currency == "USD"
    assert sale.click_id == "c1.click" and sale.promo_code == "SPRING"
    assert sale.customer_id == "cus_NZKoSNL6vB4d6i"
    assert sale.customer_email == "jenny.rosen@example.com"
    assert sale.order_id == event["data"]["object"]["payment_intent"]


@pytest.mark.parametrize(
    ("currency", "total", "tax", "shipping", "expected"),
    [
        ("jpy", 5000, 455, 0, Decimal("4545")),
        ("kwd", 12340, 0, 1000, Decimal("11.340")),
        ("isk", 500000, 0, 0, Decimal("5000.00")),
        ("bhd", 1000, 100, 0, Decimal("0.900")),
    ],
)
def test_session_amount_in_stripes_units(currency, total, tax, shipping, expected):
    session = p.checkout_session(
        currency=currency,
        amount_total=total,
        total_details={"amount_tax": tax, "amount_shipping": shipping, "amount_discount": 0},
    )
    sale = stripe.plan(
        p.stripe_event("checkout.session.completed", session), accept_test_events=False
    ).sale
    assert sale is not None and sale.amount == expected and sale.currency == currency.upper()


def test_subscription_session_and_its_first_invoice_name_one_order():
    inv = p.invoice(billing_reason="subscription_create", payment_intent="pi_first")
    session = p.checkout_session(mode="subscription", invoice=inv["id"], payment_intent=None)
    first = stripe.plan(
        p.stripe_event("checkout.session.completed", session), accept_test_events=False
    )
    second = stripe.plan(p.stripe_event("invoice.paid", inv), accept_test_events=False)
    assert first.sale is not None and second.sale is not None
    assert first.sale.order_id == second.sale.order_id == inv["id"]
    assert second.sale.amount == Decimal("20.00") and second.sale.currency == "EUR"
    assert second.sale.metadata == {"stripe_payment_intent": "pi_first"}


def test_stripe_ignores_unpaid_test_and_unused_events():
    unpaid = p.checkout_session(payment_status="unpaid")
    assert (
        "unpaid"
        in stripe.plan(
            p.stripe_event("checkout.session.completed", unpaid), accept_test_events=False
        ).ignored
    )
    test_mode = p.stripe_event("checkout.session.completed", p.checkout_session(), livemode=False)
    assert "test-mode" in stripe.plan(test_mode, accept_test_events=False).ignored
    assert stripe.plan(test_mode, accept_test_events=True).sale is not None
    assert stripe.plan(
        p.stripe_event("customer.created", {}), accept_test_events=False
    ).ignored == ("event type customer.created is not used")


def test_charge_refunded_reports_the_running_total():
    ch = p.charge(
        amount_refunded=5650,
        payment_intent="pi_x",
        refunds={"object": "list", "data": [{"id": "re_2"}, {"id": "re_1"}]},
    )
    part = stripe.plan(p.stripe_event("charge.refunded", ch), accept_test_events=False).refunds[0]
    assert part.refund_id == "re_2" and part.cumulative == (5650, 11300)
    assert part.order_ids == ("pi_x",) and part.metadata_match == ("stripe_payment_intent", "pi_x")
    # Without the list (API versions from 2022-11-15) the running total names the refund.
    ch = p.charge(amount_refunded=100, payment_intent="pi_x")
    part = stripe.plan(p.stripe_event("charge.refunded", ch), accept_test_events=False).refunds[0]
    assert part.refund_id == f"{ch['id']}:100"


@given(st.integers(1, 10**9), st.lists(st.integers(1, 10**6), min_size=1, max_size=8))
def test_stripe_refunds_telescope_to_the_base(base, steps):
    gross = sum(steps) + 17
    done, refunded = 0, 0
    for step in steps:
        refunded += step
        target = _scaled_refund(base, refunded, gross)
        assert target == round(Fraction(base * refunded, gross))
        assert target >= done
        done = target
    assert _scaled_refund(base, gross, gross) == base


def test_stripe_payload_that_is_not_an_event():
    with pytest.raises(PayloadInvalid):
        stripe.plan({"object": "charge"}, accept_test_events=False)
    with pytest.raises(PayloadInvalid):
        load_json(b"{not json")
    with pytest.raises(PayloadInvalid):
        load_json(b"[1, 2]")


# --- Shopify --------------------------------------------------------------------


def test_shopify_order_paid():
    order = p.shopify_order(
        note_attributes=[
            {"name": "gift", "value": "no"},
            {"name": "aff_click_id", "value": "c1.abc"},
        ],
        discount_codes=[{"code": "SUMMER10", "amount": "10.00", "type": "fixed_amount"}],
    )
    sale = shopify.plan("orders/paid", load_json(p.dumps(order)), accept_test_events=False).sale
    assert sale is not None
    assert sale.order_id == str(order["id"]) and sale.amount == Decimal("398.00")
    assert sale.click_id == "c1.abc" and sale.promo_code == "SUMMER10"
    assert sale.customer_id == "115310627314723954" and sale.customer_email == "jon@example.com"
    assert sale.occurred_at is not None and sale.occurred_at.utcoffset().total_seconds() == 0


def test_shopify_click_from_landing_site_and_tax_inclusive_prices():
    order = p.shopify_order(
        landing_site="/products/tent?utm_source=blog&aff_click_id=c1.land",
        taxes_included=True,
        current_subtotal_price="120.00",
        current_total_tax="21.67",
        shipping_lines=[{"price": "10.00", "tax_lines": [{"price": "1.67", "rate": 0.2}]}],
    )
    sale = shopify.plan("orders/paid", load_json(p.dumps(order)), accept_test_events=False).sale
    assert sale is not None and sale.click_id == "c1.land"
    assert sale.amount == Decimal("100.00")  # 120.00 less the line items' 20.00 of tax


def test_shopify_refund_sums_line_subtotals_exactly():
    refund = p.shopify_refund(42, ["0.10", "0.20"])
    part = shopify.plan(
        "refunds/create", load_json(p.dumps(refund)), accept_test_events=False
    ).refunds[0]
    assert part.amount == Decimal("0.30") and part.order_ids == ("42",)
    only_shipping = p.shopify_refund(42, [])
    assert (
        "no line items"
        in shopify.plan("refunds/create", only_shipping, accept_test_events=False).ignored
    )


def test_shopify_topics_and_test_orders():
    assert (
        shopify.plan("orders/cancelled", {"id": 7}, accept_test_events=False).cancel.order_id == "7"
    )
    assert (
        shopify.plan("customers/create", {}, accept_test_events=False).ignored
        == "topic customers/create is not used"
    )
    assert (
        "test order"
        in shopify.plan("orders/paid", p.shopify_order(test=True), accept_test_events=False).ignored
    )
    assert (
        shopify.event_key({"x-shopify-webhook-id": "w1", "x-shopify-event-id": "e1"}, b"") == "e1"
    )
    assert shopify.event_key({"x-shopify-webhook-id": "w1"}, b"") == "w1"


# --- WooCommerce ----------------------------------------------------------------


def test_woocommerce_sale_excludes_tax_and_shipping():
    order = p.woo_order(
        customer_id=26,
        meta_data=[{"id": 1, "key": "aff_click_id", "value": "c1.woo"}],
        coupon_lines=[{"id": 3, "code": "welcome5"}],
    )
    sale = woocommerce.plan(
        "order.created", load_json(p.dumps(order)), accept_test_events=False
    ).sale
    assert sale is not None and sale.amount == Decimal("18.00") and sale.currency == "USD"
    assert sale.click_id == "c1.woo" and sale.promo_code == "welcome5" and sale.customer_id == "26"
    assert sale.customer_email == "john.doe@example.com"
    assert (
        sale.occurred_at is not None and sale.occurred_at.isoformat() == "2026-11-20T19:22:11+00:00"
    )
    assert (
        woocommerce.plan(
            "order.created", p.woo_order(customer_id=0), accept_test_events=False
        ).sale.customer_id
        is None
    )


def test_woocommerce_refunds_are_scaled_by_base_over_total():
    order = p.woo_order(
        total="110.00",
        total_tax="10.00",
        shipping_total="0.00",
        refunds=[
            {"id": 9, "reason": "", "total": "-33.00"},
            {"id": 8, "reason": "", "total": "-11.00"},
        ],
    )
    plan = woocommerce.plan("order.updated", load_json(p.dumps(order)), accept_test_events=False)
    assert [(r.refund_id, r.amount) for r in plan.refunds] == [
        ("8", Decimal("10.00")),
        ("9", Decimal("30.00")),
    ]


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=6), st.integers(0, 3000))
def test_woocommerce_refund_parts_add_up_to_the_base(cents, tax_cents):
    total_cents = sum(cents)
    tax_cents = min(tax_cents, total_cents - 1) if total_cents > 1 else 0
    order = p.woo_order(
        total=f"{Decimal(total_cents) / 100:.2f}",
        total_tax=f"{Decimal(tax_cents) / 100:.2f}",
        shipping_total="0.00",
        refunds=[{"id": i + 1, "total": f"-{Decimal(c) / 100:.2f}"} for i, c in enumerate(cents)],
    )
    plan = woocommerce.plan("order.updated", order, accept_test_events=False)
    base = Decimal(total_cents - tax_cents) / 100
    assert sum(r.amount for r in plan.refunds) == base
    assert all(r.amount == r.amount.quantize(Decimal("0.01")) for r in plan.refunds)


def test_woocommerce_statuses():
    assert woocommerce.plan(
        "order.updated", p.woo_order(status="cancelled"), accept_test_events=False
    ).cancel
    pending = woocommerce.plan(
        "order.created", p.woo_order(status="pending"), accept_test_events=False
    )
    assert "pending" in pending.ignored
    assert "not used" in woocommerce.plan("product.created", {}, accept_test_events=False).ignored
    three = woocommerce.plan(
        "order.created",
        p.woo_order(currency="KWD", total="10.250", total_tax="0.250", shipping_total="1.000"),
        accept_test_events=False,
    )
    assert three.sale.amount == Decimal("9.000") and three.sale.currency == "KWD"


def test_stripe_promotion_code_ids_are_passed_out_of_the_mapping():
    def sale(kind, data):
        planned = stripe.plan(p.stripe_event(kind, data), accept_test_events=False)
        assert planned.sale is not None
        return planned.sale

    session = p.checkout_session(discounts=[{"coupon": "c1", "promotion_code": "promo_s"}])
    assert sale("checkout.session.completed", session).promo_external_id == "promo_s"
    assert sale("checkout.session.completed", p.checkout_session()).promo_external_id is None
    # An invoice's discounts are ids unless expanded; only an expanded one names its code.
    expanded = p.invoice(discounts=["di_1", {"id": "di_2", "promotion_code": {"id": "promo_i"}}])
    assert sale("invoice.paid", expanded).promo_external_id == "promo_i"
    assert sale("invoice.paid", p.invoice(discounts=["di_1"])).promo_external_id is None
    older = p.invoice(discount={"object": "discount", "promotion_code": "promo_old"})
    assert sale("invoice.paid", older).promo_external_id == "promo_old"
    # The metadata's code is kept beside it; the hook prefers the metadata.
    both = p.invoice(metadata={"aff_promo_code": "SAVE"}, discount={"promotion_code": "promo_x"})
    assert (
        sale("invoice.paid", both).promo_code,
        sale("invoice.paid", both).promo_external_id,
    ) == (
        "SAVE",
        "promo_x",
    )
