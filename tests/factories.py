"""Factories: plain async functions that create through the API and return the JSON."""

from __future__ import annotations

import secrets
from typing import Any

import httpx


def unique(prefix: str = "x") -> str:
    """A short unique token for names, emails and codes."""
    return f"{prefix}{secrets.token_hex(4)}"


async def create_program(
    client: httpx.AsyncClient, admin: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": unique("Program "),
        "currency": "USD",
        "time_zone": "UTC",
        "default_url": "https://shop.example/",
        "allowed_domains": ["shop.example", "*.shop.example"],
        "fallback_url": "https://shop.example/fallback",
        "hold_days": 30,
        "min_payout": "50.00",
    }
    body.update(overrides)
    r = await client.post("/v1/programs", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()


async def create_partner(
    client: httpx.AsyncClient, admin: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": unique("Partner "),
        "email": f"{unique('p')}@partners.example",
        "payout_method": "bank_transfer",
        "payout_details": {"iban_last4": "1234"},
    }
    body.update(overrides)
    r = await client.post("/v1/partners", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()
