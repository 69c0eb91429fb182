"""Fraud rules against the real API: program settings, each rule and action, bots."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from service.models import Click
from tests.conftest import make_key
from tests.conversions.factories import add_link, add_promo, click_id, sale, setup
from tests.factories import create_partner, create_program
from tests.fraud.factories import browser, click, legacy_token
from tests.helpers import assert_problem, error_fields
from tests.links.factories import create_link

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
SLACK_PREVIEW = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
CURL = "curl/8.5.0"


def rules_of(program):
    return {r["rule"]: r for r in program["fraud_rules"]}


async def post(client, headers, body):
    r = await client.post("/v1/conversions", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def _program_with_link(client, admin, **program):
    program, partner = await setup(client, admin, **program)
    link = await create_link(client, admin, program, partner)
    return program, partner, link


# --- settings -------------------------------------------------------------------


async def test_program_rules_default_and_named(client, admin):
    program = await create_program(
        client, admin, fraud_rules=[{"rule": "velocity", "action": "reject", "max_per_hour": 5}]
    )
    rules = rules_of(program)
    assert list(rules) == [
        "fast_conversion",
        "self_referral",
        "disposable_email",
        "paid_traffic",
        "click_flood",
        "velocity",
        "blocked_referrer",
    ]
    assert rules["velocity"] == {"rule": "velocity", "action": "reject", "max_per_hour": 5}
    assert rules["fast_conversion"] == {"rule": "fast_conversion", "action": "hold", "seconds": 3}
    assert rules["paid_traffic"]["action"] == "off"
    got = (await client.get(f"/v1/programs/{program['id']}", headers=admin)).json()
    assert got["fraud_rules"] == program["fraud_rules"]
    r = await client.patch(
        f"/v1/programs/{program['id']}",
        json={"fraud_rules": [{"rule": "fast_conversion", "action": "off"}]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    rules = rules_of(r.json())
    assert rules["fast_conversion"]["action"] == "off"
    # The list replaces the program's: velocity, no longer named, is back to its default.
    assert rules["velocity"] == {"rule": "velocity", "action": "off", "max_per_hour": 100}


@pytest.mark.parametrize(
    "rules",
    [
        [{"rule": "no_such_rule", "action": "hold"}],
        [{"action": "hold"}],
        [{"rule": "fast_conversion", "action": "flag"}],
        [{"rule": "fast_conversion", "seconds": 0}],
        [{"rule": "fast_conversion", "minutes": 3}],
        [{"rule": "paid_traffic", "markers": ["utm_source"]}],
        [{"rule": "blocked_referrer", "domains": ["not a host"]}],
        [{"rule": "velocity"}, {"rule": "velocity", "action": "hold"}],
        "hold everything",
    ],
)
async def test_bad_rules_are_a_422_naming_fraud_rules(client, admin, rules):
    program = await create_program(client, admin)
    created = await client.post(
        "/v1/programs",
        json={
            "name": "p",
            "currency": "USD",
            "default_url": "https://shop.example/",
            "fraud_rules": rules,
        },
        headers=admin,
    )
    patched = await client.patch(
        f"/v1/programs/{program['id']}", json={"fraud_rules": rules}, headers=admin
    )
    for r in (created, patched):
        fields = error_fields(r)
        assert fields and all(f.startswith("fraud_rules") for f in fields), fields
    null = await client.patch(
        f"/v1/programs/{program['id']}", json={"fraud_rules": None}, headers=admin
    )
    assert error_fields(null) == ["fraud_rules"]


# --- each rule and action -------------------------------------------------------------


async def test_fast_conversion_holds_and_off_lets_it_through(client, admin):
    program, _partner, link = await _program_with_link(client, admin)
    token = await click(client, link["code"])
    held = await post(client, admin, sale(program, click_id=token))
    assert held["status"] == "review"
    assert [f["rule"] for f in held["fraud"]] == ["fast_conversion"]
    assert held["fraud"][0]["action"] == "hold"
    assert "under 3s" in held["fraud"][0]["detail"]
    assert held["review_reason"] == held["fraud"][0]["detail"]
    # Held entries are written, and not payable until approved.
    assert [e["amount"] for e in held["commissions"]] == ["10.00"]
    got = (await client.get(f"/v1/conversions/{held['id']}", headers=admin)).json()
    assert got["fraud"] == held["fraud"] and got["status"] == "review"
    await client.patch(
        f"/v1/programs/{program['id']}",
        json={"fraud_rules": [{"rule": "fast_conversion", "action": "off"}]},
        headers=admin,
    )
    fine = await post(client, admin, sale(program, click_id=await click(client, link["code"])))
    assert fine["status"] == "accepted" and fine["fraud"] == [] and fine["review_reason"] is None
    # The earlier conversion keeps what fired under the rules of its time.
    again = (await client.get(f"/v1/conversions/{held['id']}", headers=admin)).json()
    assert again["status"] == "review" and again["fraud"] == held["fraud"]


async def test_fast_conversion_threshold_is_exclusive(client, app, admin):
    program, partner = await setup(
        client, admin, fraud_rules=[{"rule": "fast_conversion", "seconds": 60}]
    )
    link = await add_link(app, program["id"], partner["id"])
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    exact = await post(
        client,
        admin,
        sale(
            program,
            click_id=click_id(app, link, at),
            occurred_at=(at + timedelta(seconds=60)).isoformat(),
        ),
    )
    assert exact["status"] == "accepted"
    under = await post(
        client,
        admin,
        sale(
            program,
            click_id=click_id(app, link, at),
            occurred_at=(at + timedelta(seconds=59.9)).isoformat(),
        ),
    )
    assert under["status"] == "review" and "59.9s" in under["review_reason"]


async def test_self_referral_by_email_and_domain(client, app, admin):
    partner = await create_partner(client, admin, email="owner@blog-shop.example")
    program, _ = await setup(client, admin, partner=partner)
    link = await add_link(app, program["id"], partner["id"])
    same = await post(
        client,
        admin,
        sale(program, click_id=click_id(app, link), customer_email="Owner@blog-shop.example"),
    )
    assert same["status"] == "review"
    assert same["fraud"][0]["rule"] == "self_referral"
    assert "email is the partner's" in same["fraud"][0]["detail"]
    domain = await post(
        client,
        admin,
        sale(program, click_id=click_id(app, link), customer_email="friend@blog-shop.example"),
    )
    assert "domain blog-shop.example" in domain["review_reason"]
    free = await create_partner(client, admin, email="owner@gmail.com")
    program2, _ = await setup(client, admin, partner=free)
    link2 = await add_link(app, program2["id"], free["id"])
    other = await post(
        client,
        admin,
        sale(program2, click_id=click_id(app, link2), customer_email="someone@gmail.com"),
    )
    assert other["status"] == "accepted" and other["fraud"] == []


async def test_disposable_email_rejects_and_nets_to_zero(client, app, admin):
    program, partner = await setup(
        client, admin, fraud_rules=[{"rule": "disposable_email", "action": "reject"}]
    )
    promo = await add_promo(app, program["id"], partner["id"])
    body = sale(program, promo_code=promo, customer_id="c-1", customer_email="x@mailinator.com")
    rejected = await post(client, admin, body)
    assert rejected["status"] == "rejected"
    assert rejected["fraud"] == [
        {
            "rule": "disposable_email",
            "action": "reject",
            "detail": "disposable email domain mailinator.com",
        }
    ]
    assert sorted(e["amount"] for e in rejected["commissions"]) == ["-10.00", "10.00"]
    # A rejected sale binds no customer: the next one from the customer is unattributed.
    later = await post(client, admin, sale(program, customer_id="c-1"))
    assert later["attribution"]["method"] is None
    queue = (
        await client.get(
            f"/v1/conversions?program_id={program['id']}&status=rejected", headers=admin
        )
    ).json()
    assert [c["id"] for c in queue["items"]] == [rejected["id"]]


async def test_reject_wins_over_hold(client, app, admin):
    program, partner = await setup(
        client, admin, fraud_rules=[{"rule": "disposable_email", "action": "reject"}]
    )
    link = await add_link(app, program["id"], partner["id"])
    now = datetime.now(UTC)
    r = await post(
        client,
        admin,
        sale(
            program,
            click_id=click_id(app, link, now - timedelta(seconds=1)),
            occurred_at=now.isoformat(),
            customer_email="x@mailinator.com",
        ),
    )
    assert r["status"] == "rejected"
    assert [(f["rule"], f["action"]) for f in r["fraud"]] == [
        ("fast_conversion", "hold"),
        ("disposable_email", "reject"),
    ]
    assert "; " in r["review_reason"]


async def test_paid_traffic_from_the_click_query(client, app, admin):
    program, _partner, link = await _program_with_link(
        client,
        admin,
        fraud_rules=[
            {"rule": "fast_conversion", "action": "off"},
            {"rule": "paid_traffic", "action": "hold"},
        ],
    )
    token = await click(client, link["code"], query="gclid=Cj0KCQ&sub1=brand")
    cid = app.state.click_signer.verify(token)
    async with app.state.sessionmaker() as session:
        stored = await session.scalar(select(Click.paid_markers).where(Click.id == cid.click_uuid))
    assert stored == ["gclid"]
    held = await post(client, admin, sale(program, click_id=token))
    assert held["status"] == "review"
    assert held["fraud"] == [
        {
            "rule": "paid_traffic",
            "action": "hold",
            "detail": "the click came from a paid ad (gclid)",
        }
    ]
    organic = await post(client, admin, sale(program, click_id=await click(client, link["code"])))
    assert organic["status"] == "accepted"


async def test_click_flood_counts_the_visitors_hour(client, admin):
    program, partner, link = await _program_with_link(
        client,
        admin,
        fraud_rules=[
            {"rule": "fast_conversion", "action": "off"},
            {"rule": "click_flood", "action": "hold", "max_per_hour": 2},
        ],
    )
    # The same visitor on another of the partner's links counts too.
    other = await create_link(client, admin, program, partner)
    ua = browser()
    tokens = []
    for code in (link["code"], other["code"], link["code"], link["code"]):
        tokens.append(await click(client, code, user_agent=ua))
        # A click's time is kept to the millisecond (it rides in the click id): clicks of
        # one millisecond are not before one another. These are one after another.
        await asyncio.sleep(0.002)
    at_limit = await post(client, admin, sale(program, click_id=tokens[2]))
    assert at_limit["status"] == "accepted", at_limit["fraud"]
    flooded = await post(client, admin, sale(program, click_id=tokens[3]))
    assert flooded["status"] == "review"
    assert flooded["fraud"][0]["rule"] == "click_flood"
    assert "made more than 2 clicks" in flooded["fraud"][0]["detail"]
    # Another visitor is not affected.
    fresh = await post(client, admin, sale(program, click_id=await click(client, link["code"])))
    assert fresh["status"] == "accepted"


async def test_velocity_counts_the_partners_hour(client, app, admin):
    program, partner = await setup(
        client, admin, fraud_rules=[{"rule": "velocity", "action": "hold", "max_per_hour": 2}]
    )
    promo = await add_promo(app, program["id"], partner["id"])
    now = datetime.now(UTC)
    statuses = []
    for minutes in (50, 40, 30):
        body = sale(
            program, promo_code=promo, occurred_at=(now - timedelta(minutes=minutes)).isoformat()
        )
        statuses.append(await post(client, admin, body))
    assert [c["status"] for c in statuses] == ["accepted", "accepted", "review"]
    assert statuses[2]["fraud"][0]["rule"] == "velocity"
    assert "more than 2 conversions" in statuses[2]["review_reason"]
    # Over an hour after the first two, the count starts again.
    later = sale(program, promo_code=promo, occurred_at=(now + timedelta(minutes=2)).isoformat())
    assert (await post(client, admin, later))["status"] == "review"  # 40 and 30 min ago + this


async def test_blocked_referrer_host_and_subdomains(client, admin):
    program, _partner, link = await _program_with_link(
        client,
        admin,
        fraud_rules=[
            {"rule": "fast_conversion", "action": "off"},
            {"rule": "blocked_referrer", "action": "reject", "domains": ["coupons.example"]},
        ],
    )
    results = {}
    for referer in (
        "https://coupons.example/deal",
        "https://www.coupons.example/x",
        "https://mycoupons.example/",
        None,
    ):
        token = await click(client, link["code"], referer=referer)
        results[referer] = (await post(client, admin, sale(program, click_id=token)))["status"]
    assert results == {
        "https://coupons.example/deal": "rejected",
        "https://www.coupons.example/x": "rejected",
        "https://mycoupons.example/": "accepted",
        None: "accepted",
    }


# --- bots -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "method"),
    [(GOOGLEBOT, "GET"), (SLACK_PREVIEW, "GET"), (None, "HEAD"), (CURL, "GET")],
    ids=["bot", "preview", "head", "curl"],
)
async def test_a_bots_click_never_attributes(client, admin, user_agent, method):
    program, _partner, link = await _program_with_link(
        client, admin, attribution_order=["click", "promo_code"]
    )
    token = await click(client, link["code"], user_agent=user_agent or browser(), method=method)
    r = await post(client, admin, sale(program, click_id=token))
    assert r["attribution"]["method"] is None
    assert r["attribution"]["reasons"][0] == {"method": "click", "reason": "click from a bot"}
    assert r["commissions"] == []


async def test_a_bots_click_falls_to_the_next_method(client, app, admin):
    program, partner, link = await _program_with_link(
        client, admin, attribution_order=["click", "promo_code"]
    )
    promo = await add_promo(app, program["id"], partner["id"])
    token = await click(client, link["code"], user_agent=GOOGLEBOT)
    r = await post(client, admin, sale(program, click_id=token, promo_code=promo))
    assert r["attribution"]["method"] == "promo_code"
    assert r["attribution"]["reasons"] == [{"method": "click", "reason": "click from a bot"}]


async def test_ids_signed_before_the_bot_bit_still_work(client, app, admin):
    program, _partner, link = await _program_with_link(client, admin)
    secrets_ = app.state.secrets
    key = secrets_.click_keys[secrets_.click_key_id]
    at = datetime.now(UTC) - timedelta(minutes=5)
    human = legacy_token(secrets_.click_key_id, key, uuid.UUID(link["id"]), at)
    r = await post(client, admin, sale(program, click_id=human))
    assert r["attribution"]["method"] == "click" and r["status"] == "accepted"
    # An old id of a click the redirect marked bot: the click row says so.
    bot = app.state.click_signer.verify(await click(client, link["code"], user_agent=CURL))
    old = legacy_token(secrets_.click_key_id, key, bot.link_id, bot.clicked_at, bot.nonce)
    assert app.state.click_signer.verify(old).click_uuid == bot.click_uuid
    r = await post(client, admin, sale(program, click_id=old))
    assert r["attribution"]["method"] is None
    assert {"method": "click", "reason": "click from a bot"} in r["attribution"]["reasons"]


# --- review and the partner's view ---------------------------------------------------------


async def test_review_queue_and_the_partners_view(client, app, admin):
    program, partner, link = await _program_with_link(client, admin)
    held = await post(client, admin, sale(program, click_id=await click(client, link["code"])))
    queue = (
        await client.get(f"/v1/conversions?program_id={program['id']}&status=review", headers=admin)
    ).json()
    assert [c["id"] for c in queue["items"]] == [held["id"]]
    key = await make_key(app, "partner", partner_id=partner["id"])
    seen = (await client.get(f"/v1/conversions/{held['id']}", headers=key)).json()
    assert seen["status"] == "review" and "after the click" in seen["review_reason"]
    r = await client.post(
        f"/v1/conversions/{held['id']}/approve",
        json={"reason": "checked with the customer"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    seen = (await client.get(f"/v1/conversions/{held['id']}", headers=key)).json()
    assert seen["status"] == "accepted" and seen["review_reason"] == "checked with the customer"
    assert seen["fraud"][0]["rule"] == "fast_conversion"


# --- the quality report -----------------------------------------------------------------


async def test_quality_report_per_partner(client, app, admin):
    program, blog, link = await _program_with_link(
        client, admin, fraud_rules=[{"rule": "disposable_email", "action": "reject"}]
    )
    network = await create_partner(client, admin)
    await setup(client, admin, program=program, partner=network)
    promo = await add_promo(app, program["id"], network["id"])
    await click(client, link["code"])
    await click(client, link["code"], user_agent=GOOGLEBOT)
    await click(client, link["code"], method="HEAD")
    slow = click_id(app, uuid.UUID(link["id"]))
    await post(client, admin, sale(program, click_id=slow))  # accepted
    await post(client, admin, sale(program, click_id=await click(client, link["code"])))  # held
    await post(
        client,
        admin,
        sale(
            program, click_id=await click(client, link["code"]), customer_email="a@mailinator.com"
        ),
    )  # fast (hold) and disposable (reject): rejected
    await post(client, admin, sale(program, promo_code=promo))
    url = f"/v1/reports/quality?program_id={program['id']}"
    r = await client.get(url, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"from", "to", "program_id", "rows"}
    rows = {row["partner_id"]: row for row in body["rows"]}
    b = rows[blog["id"]]
    assert (b["clicks"], b["bots"], b["bot_share"]) == (3, 2, "0.4000")
    assert (b["conversions"], b["held"], b["rejected"], b["approved"]) == (3, 1, 1, 1)
    assert b["rules"] == {
        "fast_conversion": 2,
        "self_referral": 0,
        "disposable_email": 1,
        "paid_traffic": 0,
        "click_flood": 0,
        "velocity": 0,
        "blocked_referrer": 0,
    }
    n = rows[network["id"]]
    assert (n["clicks"], n["bots"], n["bot_share"], n["approved"]) == (0, 0, None, 1)
    key = await make_key(app, "partner", partner_id=network["id"])
    own = (await client.get(url, headers=key)).json()
    assert [row["partner_id"] for row in own["rows"]] == [network["id"]]
    merchant = await make_key(app, "merchant", program_ids=[uuid.UUID(program["id"])])
    assert len((await client.get(url, headers=merchant)).json()["rows"]) == 2
    elsewhere = await create_program(client, admin)
    other = await make_key(app, "merchant", program_ids=[uuid.UUID(elsewhere["id"])])
    assert_problem(await client.get(url, headers=other), 404)
    bad = await client.get(
        url + "&from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", headers=admin
    )
    assert error_fields(bad) == ["to"]
