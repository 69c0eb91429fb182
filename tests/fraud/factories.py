"""Clicks through the real redirect, and click ids in the format before the bot bit."""

from __future__ import annotations

import base64
import hmac
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.factories import unique
from tests.links.factories import click_token


def browser() -> str:
    """A browser user agent of its own, so each test is a visitor of its own."""
    return f"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 {unique()}"


async def click(
    client: Any,
    code: str,
    *,
    user_agent: str | None = None,
    query: str = "",
    referer: str | None = None,
    method: str = "GET",
) -> str:
    """The click id the redirect issues for one visit."""
    headers = {"user-agent": user_agent if user_agent is not None else browser()}
    if referer:
        headers["referer"] = referer
    r = await client.request(method, f"/r/{code}{'?' + query if query else ''}", headers=headers)
    assert r.status_code == 302, r.text
    return click_token(r.headers["location"])


def legacy_token(
    key_id: str, secret: bytes, link: uuid.UUID, at: datetime, nonce: bytes | None = None
) -> str:
    """A version 1 click id, as issued before ids carried the bot bit."""
    ms = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    kid = key_id.encode()
    payload = (
        bytes([len(kid)]) + kid + link.bytes + ms.to_bytes(6, "big") + (nonce or os.urandom(10))
    )
    tag = hmac.digest(secret, b"c1" + payload, "sha256")[:16]
    return "c1" + base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()
