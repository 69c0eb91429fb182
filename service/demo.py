"""`python -m service demo`: a program, partners, links and sample traffic, through the API."""

from __future__ import annotations

import asyncio
import random
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp

from service.auth.keys import create_key
from service.config import Settings
from service.models import Role

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"


async def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300 and response.status_code != 302:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json() if response.content else {}


async def run_demo(asgi: ASGIApp, fastapi: FastAPI, settings: Settings) -> None:
    """Load a demo program with two partners and traffic through `asgi` (served in front of
    `fastapi`, whose lifespan this runs), then print curl lines to try."""
    async with fastapi.router.lifespan_context(fastapi):
        async with fastapi.state.sessionmaker() as session:
            _, admin_key = await create_key(session, Role.admin, name="demo admin")
            await session.commit()
        admin = {"Authorization": f"Bearer {admin_key}"}
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(
            transport=transport, base_url=settings.public_url, headers=admin
        ) as c:
            tag = secrets.token_hex(3)
            program = await _ok(
                await c.post(
                    "/v1/programs",
                    json={
                        "name": f"Demo shop {tag}",
                        "currency": "USD",
                        "time_zone": "America/New_York",
                        "default_url": "https://shop.example/",
                        "allowed_domains": ["shop.example", "*.shop.example"],
                        "fallback_url": "https://shop.example/partners",
                        "hold_days": 0,
                        "min_payout": "20.00",
                    },
                )
            )
            network = await _ok(
                await c.post(
                    "/v1/partners",
                    json={"name": "Deals Network", "email": f"network-{tag}@demo.example"},
                )
            )
            blog = await _ok(
                await c.post(
                    "/v1/partners",
                    json={
                        "name": "Gear Blog",
                        "email": f"blog-{tag}@demo.example",
                        "parent_id": network["id"],
                        "payout_method": "bank_transfer",
                        "payout_details": {"iban_last4": "4242"},
                    },
                )
            )
            terms = {
                "rules": [
                    {
                        "event": "sale",
                        "type": "percent",
                        "tiers": [
                            {"from": "0", "percent": "10"},
                            {"from": "1000.00", "percent": "15"},
                        ],
                    },
                    {"event": "lead", "type": "flat", "amount": "2.50"},
                ],
                "parent_override_percent": "5",
            }
            start = (datetime.now(UTC) - timedelta(days=20)).isoformat()
            for partner in (blog, network):
                await _ok(
                    await c.post(
                        f"/v1/partners/{partner['id']}/agreements",
                        json={"program_id": program["id"], "terms": terms, "effective_from": start},
                    )
                )
            link = await _ok(
                await c.post(
                    "/v1/links",
                    json={
                        "program_id": program["id"],
                        "partner_id": blog["id"],
                        "destination_url": "https://shop.example/tents",
                    },
                )
            )
            promo = await _ok(
                await c.post(
                    "/v1/promo-codes",
                    json={
                        "program_id": program["id"],
                        "partner_id": network["id"],
                        "code": f"NET{tag.upper()}",
                    },
                )
            )
            merchant = await _ok(
                await c.post(
                    "/v1/api-keys",
                    json={"role": "merchant", "program_ids": [program["id"]], "name": "demo shop"},
                )
            )
            partner_key = await _ok(
                await c.post(
                    "/v1/api-keys",
                    json={"role": "partner", "partner_id": blog["id"], "name": "demo blog"},
                )
            )
            finance = await _ok(await c.post("/v1/api-keys", json={"role": "finance"}))

            rng = random.Random(7)
            tokens = []
            for i in range(120):
                r = await c.get(
                    f"/r/{link['code']}",
                    params={"sub1": "tents-review", "utm_source": "blog"},
                    headers={"user-agent": BROWSER, "x-forwarded-for": f"198.51.100.{i % 50}"},
                    follow_redirects=False,
                )
                query = parse_qs(urlsplit(r.headers["location"]).query)
                tokens.append(query[program["click_param"]][0])
            # Visitors browse before they buy: a sale under 3 seconds after its click is
            # held for review by the fast_conversion rule, which the demo is not about.
            await asyncio.sleep(3.5)
            shop = {"Authorization": f"Bearer {merchant['key']}"}
            orders = []
            for i in range(14):
                amount = f"{rng.randint(4000, 30000) / 100:.2f}"
                body: dict[str, Any] = {
                    "program_id": program["id"],
                    "type": "sale",
                    "order_id": f"demo-{tag}-{i}",
                    "amount": amount,
                    "customer_id": f"cust-{tag}-{i}",
                }
                if i % 4 == 3:
                    body["promo_code"] = promo["code"].lower()
                    body["occurred_at"] = (datetime.now(UTC) - timedelta(days=i)).isoformat()
                else:
                    body["click_id"] = tokens[i]
                orders.append(await _ok(await c.post("/v1/conversions", json=body, headers=shop)))
            await _ok(
                await c.post(
                    "/v1/refunds",
                    json={
                        "program_id": program["id"],
                        "order_id": orders[0]["order_id"],
                        "refund_id": f"demo-refund-{tag}",
                        "amount": "20.00",
                    },
                    headers=shop,
                )
            )
            portal = {
                who: (await _ok(await c.post("/v1/portal-links", json=body)))["url"]
                for who, body in (
                    ("partner", {"partner_id": blog["id"]}),
                    ("admin", {"role": "admin"}),
                    ("finance", {"role": "finance"}),
                )
            }

    base = settings.public_url
    print(f"Demo program {program['id']} ({program['name']}) is loaded.")
    print(f"  partners: {blog['name']} {blog['id']}, {network['name']} {network['id']}")
    print(f"  tracking link: {link['url']}   promo code: {promo['code']}")
    print("  120 clicks, 14 sales (one partly refunded). Start the service (make run), then try:")
    print()
    print(f"  curl -i '{base}/r/{link['code']}?sub1=hello'")
    print(
        f"  curl -s -H 'Authorization: Bearer {admin_key}' {base}/v1/conversions?program_id={program['id']}"
    )
    print(f"  curl -s -H 'Authorization: Bearer {partner_key['key']}' {base}/v1/commissions")
    print(
        f"  curl -s -H 'Authorization: Bearer {admin_key}' '{base}/v1/reports/quality?program_id={program['id']}'"
    )
    print(
        f"  curl -s -H 'Authorization: Bearer {finance['key']}' '{base}/v1/payouts/preview?program_id={program['id']}'"
    )
    print()
    print("The portal in a browser (each link signs in once, within 24 hours):")
    for who, url in portal.items():
        print(f"  {who:<8} {url}")
    print()
    print("Keys (shown once):")
    print(f"  admin    {admin_key}")
    print(f"  merchant {merchant['key']}")
    print(f"  partner  {partner_key['key']}")
    print(f"  finance  {finance['key']}")
