"""Data for the portal tests, made through the API as a shop and an admin would."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from service.portal.sessions import COOKIE
from tests.factories import create_partner, create_program, unique

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
TERMS = {"rules": [{"event": "sale", "type": "percent", "percent": "10"}]}


async def agree(
    client: httpx.AsyncClient, admin: dict[str, str], partner: str, program: str
) -> None:
    r = await client.post(
        f"/v1/partners/{partner}/agreements",
        json={"program_id": program, "effective_from": "2026-01-01T00:00:00Z", "terms": TERMS},
        headers=admin,
    )
    assert r.status_code == 201, r.text


async def link(client: httpx.AsyncClient, admin: dict[str, str], partner: str, program: str) -> Any:
    r = await client.post(
        "/v1/links", json={"program_id": program, "partner_id": partner}, headers=admin
    )
    assert r.status_code == 201, r.text
    return r.json()


async def click(client: httpx.AsyncClient, code: str) -> str:
    r = await client.get(f"/r/{code}?sub1=review", headers={"user-agent": BROWSER_UA})
    assert r.status_code == 302, r.text
    return parse_qs(urlsplit(r.headers["location"]).query)["aff_click_id"][0]


async def sale(
    client: httpx.AsyncClient, merchant: dict[str, str], program: str, click_id: str, amount: str
) -> Any:
    r = await client.post(
        "/v1/conversions",
        json={
            "program_id": program,
            "type": "sale",
            "order_id": unique("order-"),
            "amount": amount,
            "click_id": click_id,
        },
        headers=merchant,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def portal_link(client: httpx.AsyncClient, admin: dict[str, str], **body: str) -> str:
    r = await client.post("/v1/portal-links", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["url"])


async def world(client: httpx.AsyncClient, admin: dict[str, str], make_key: Any) -> dict[str, Any]:
    """A program, partner A with a link, clicks and sales (one held, one accepted), and
    partner B in another program with its own sale."""
    program = await create_program(client, admin, hold_days=0, min_payout="1.00")
    other = await create_program(client, admin, hold_days=0, min_payout="1.00")
    a = await create_partner(client, admin, name=unique("Gear Blog "))
    b = await create_partner(client, admin, name=unique("Other Site "))
    await agree(client, admin, a["id"], program["id"])
    await agree(client, admin, b["id"], other["id"])
    shop = await make_key("merchant", program_ids=[program["id"], other["id"]])
    a_link = await link(client, admin, a["id"], program["id"])
    b_link = await link(client, admin, b["id"], other["id"])
    # A sale seconds after its click is held by the fast_conversion rule.
    held = await sale(client, shop, program["id"], await click(client, a_link["code"]), "80.00")
    assert held["status"] == "review", held
    r = await client.patch(
        f"/v1/programs/{program['id']}",
        json={"fraud_rules": [{"rule": "fast_conversion", "action": "off"}]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    await click(client, a_link["code"])
    accepted = await sale(
        client, shop, program["id"], await click(client, a_link["code"]), "123.45"
    )
    assert accepted["status"] == "accepted", accepted
    r = await client.patch(
        f"/v1/programs/{other['id']}",
        json={"fraud_rules": [{"rule": "fast_conversion", "action": "off"}]},
        headers=admin,
    )
    b_sale = await sale(client, shop, other["id"], await click(client, b_link["code"]), "50.00")
    return {
        "program": program,
        "other": other,
        "a": a,
        "b": b,
        "a_link": a_link,
        "b_link": b_link,
        "held": held,
        "accepted": accepted,
        "b_sale": b_sale,
    }


async def signed_in(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    """Use a link; the session cookie as a header (the test host is not https)."""
    path = url.removeprefix("http://aff.test")
    r = await client.post(path)
    assert r.status_code == 303, r.text
    m = re.search(rf"{COOKIE}=([^;]+)", r.headers["set-cookie"])
    assert m
    return {"cookie": f"{COOKIE}={m.group(1)}"}


def token_of(page: str) -> str:
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert m
    return m.group(1)
