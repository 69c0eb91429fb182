"""Sign-in links, sessions, CSRF and roles, through the whole stack (no browser)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from service.kit.time import utc_now
from service.models import PortalLink
from service.portal import csrf
from service.portal.web import secure_cookies
from tests.conftest import make_key
from tests.factories import create_partner, create_program, unique
from tests.helpers import assert_problem, error_fields
from tests.portal import flows
from tests.portal.flows import signed_in, token_of

ROOT = Path(__file__).resolve().parents[2]


async def test_portal_links_take_a_partner_or_a_role(client, admin):
    partner = await create_partner(client, admin)
    r = await client.post("/v1/portal-links", json={}, headers=admin)
    assert "body" in error_fields(r)
    r = await client.post(
        "/v1/portal-links", json={"partner_id": partner["id"], "role": "admin"}, headers=admin
    )
    assert error_fields(r)
    assert "role" in error_fields(
        await client.post("/v1/portal-links", json={"role": "merchant"}, headers=admin)
    )
    missing = "00000000-0000-7000-8000-000000000000"
    assert_problem(
        await client.post("/v1/portal-links", json={"partner_id": missing}, headers=admin), 404
    )
    r = await client.post("/v1/portal-links", json={"partner_id": partner["id"]}, headers=admin)
    assert r.status_code == 201
    body = r.json()
    assert body["url"].startswith("http://aff.test/portal/sign-in/")
    assert (
        timedelta(hours=23)
        < (datetime.fromisoformat(body["expires_at"]) - utc_now())
        <= timedelta(hours=24)
    )


async def test_only_an_admin_issues_links(client, app):
    partner = await create_partner(client, await make_key(app, "admin"))
    for role, kw in (("finance", {}), ("partner", {"partner_id": partner["id"]})):
        key = await make_key(app, role, **kw)
        r = await client.post("/v1/portal-links", json={"role": "admin"}, headers=key)
        assert_problem(r, 403)


async def test_a_link_is_used_once_and_its_preview_uses_nothing(client, admin):
    url = await flows.portal_link(client, admin, role="finance")
    path = url.removeprefix("http://aff.test")
    for _ in range(2):
        page = await client.get(path)
        assert page.status_code == 200 and "Sign in" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
    r = await client.post(path)
    assert r.status_code == 303 and r.headers["location"] == "/portal/finance"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    assert "Path=/portal" in cookie
    again = await client.post(path)
    assert again.status_code == 410 and "text/html" in again.headers["content-type"]
    assert (await client.get(path)).status_code == 410


async def test_an_expired_link_does_not_sign_in(client, admin, app):
    url = await flows.portal_link(client, admin, role="admin")
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(PortalLink)
            .where(PortalLink.used_at.is_(None))
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
        await session.commit()
    assert (await client.post(url.removeprefix("http://aff.test"))).status_code == 410


def test_cookies_are_secure_except_plain_http_to_this_machine():
    assert not secure_cookies("http://127.0.0.1:8000")
    assert not secure_cookies("http://localhost:8000")
    assert secure_cookies("https://127.0.0.1:8000")
    assert secure_cookies("http://aff.example")
    assert secure_cookies("https://aff.example")


async def test_roles_csrf_and_sign_out(client, admin):
    partner = await create_partner(client, admin)
    program = await create_program(client, admin)
    await flows.agree(client, admin, partner["id"], program["id"])
    who = await signed_in(client, await flows.portal_link(client, admin, partner_id=partner["id"]))
    page = await client.get("/portal/partner/links", headers=who)
    assert page.status_code == 200
    token = token_of(page.text)
    for path in ("/portal/manage", "/portal/finance", "/portal/finance/reconciliation"):
        assert (await client.get(path, headers=who)).status_code == 403
    form: dict[str, Any] = {"program_id": program["id"], "code": unique("c")}
    r = await client.post("/portal/partner/links", data=form, headers=who)
    assert r.status_code == 403 and "CSRF" in r.text
    other = await signed_in(
        client, await flows.portal_link(client, admin, partner_id=partner["id"])
    )
    page = await client.get("/portal/partner/links", headers=other)
    r = await client.post(
        "/portal/partner/links", data={**form, "csrf_token": token_of(page.text)}, headers=who
    )
    assert r.status_code == 403  # another session's token
    r = await client.post("/portal/partner/links", data={**form, "csrf_token": token}, headers=who)
    assert r.status_code == 303
    links = await client.get("/v1/links", params={"partner_id": partner["id"]}, headers=admin)
    assert [link["code"] for link in links.json()["items"]] == [form["code"]]
    # A NUL in a field is a page naming it, not a 500.
    r = await client.post(
        "/portal/partner/links",
        data={"program_id": program["id"], "code": "a\x00b", "csrf_token": token},
        headers=who,
    )
    assert r.status_code == 422 and "code" in r.text
    assert (await client.post("/portal/sign-out", data={}, headers=who)).status_code == 403
    r = await client.post("/portal/sign-out", data={"csrf_token": token}, headers=who)
    assert r.status_code == 200 and "Signed out" in r.text
    assert (await client.get("/portal/partner", headers=who)).status_code == 401
    assert (await client.get("/portal/partner", headers=other)).status_code == 200


async def test_a_suspended_partner_is_signed_out(client, admin):
    partner = await create_partner(client, admin)
    who = await signed_in(client, await flows.portal_link(client, admin, partner_id=partner["id"]))
    assert (await client.get("/portal/partner", headers=who)).status_code == 200
    r = await client.patch(
        f"/v1/partners/{partner['id']}", json={"status": "suspended"}, headers=admin
    )
    assert r.status_code == 200
    assert (await client.get("/portal/partner", headers=who)).status_code == 401


async def test_balances_are_each_partners_own(client, admin, app):
    program = await create_program(client, admin, hold_days=0, min_payout="1.00")
    a = await create_partner(client, admin)
    b = await create_partner(client, admin)
    from tests.payouts.factories import add_entry

    await add_entry(app, a["id"], program["id"], 1234)
    await add_entry(app, b["id"], program["id"], 500)
    key_a = await make_key(app, "partner", partner_id=a["id"])
    r = await client.get("/v1/balances", headers=key_a)
    assert r.status_code == 200
    assert [(i["partner_id"], i["payable"]) for i in r.json()["items"]] == [(a["id"], "12.34")]
    assert_problem(
        await client.get("/v1/balances", params={"partner_id": b["id"]}, headers=key_a), 404
    )
    fin = await make_key(app, "finance")
    r = await client.get("/v1/balances", params={"program_id": program["id"]}, headers=fin)
    assert {i["partner_id"] for i in r.json()["items"]} == {a["id"], b["id"]}
    r = await client.get("/v1/payouts", params={"format": "csv"}, headers=key_a)
    assert r.status_code == 200 and r.text.startswith('"payout_id","run_id"')


@pytest.mark.parametrize(
    ("args", "expect"),
    [(["--role", "finance"], 0), (["--partner", "not-an-id"], 2)],
)
def test_cli_prints_a_link(args, expect, database_url):
    import os

    env = {**os.environ, "DATABASE_URL": database_url, "AFFILIATE_PUBLIC_URL": "http://aff.test"}
    out = subprocess.run(
        [sys.executable, "-m", "service", "portal-link", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == expect, out.stderr
    if expect == 0:
        assert out.stdout.strip().splitlines()[-1].startswith("http://aff.test/portal/sign-in/")


def test_csrf_tokens_differ_per_session():
    assert csrf.token_for("a") != csrf.token_for("b")
    assert csrf.valid("a", csrf.token_for("a")) and not csrf.valid("a", None)


async def test_a_bad_address_is_a_page_naming_the_field(client, admin):
    who = await signed_in(client, await flows.portal_link(client, admin, role="admin"))
    r = await client.get("/portal/manage/programs/not-a-uuid", headers=who)
    assert r.status_code == 422 and "text/html" in r.headers["content-type"]
    assert "program_id" in r.text
    r = await client.get(
        "/portal/manage/programs/00000000-0000-7000-8000-000000000000", headers=who
    )
    assert r.status_code == 404 and "does not exist" in r.text
