"""The portal in a real headless Chromium (Debian's package) against a real uvicorn.

Skipped, saying why, when no Chromium is installed. Screenshots of each page, at desktop
width and at 375 px, go to tests/artifacts/screenshots/; with UPDATE_DOCS_IMAGE=1 the
overview's also replaces docs/portal-overview.png, the README's.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from service.app import create_asgi
from tests.conftest import make_key, settings_for_tests
from tests.helpers import free_port
from tests.portal import flows

CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "portal-overview.png"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium found (apt-get install chromium): browser tests skipped"
)


@pytest.fixture(scope="module")
async def live(database_url: str) -> AsyncIterator[dict[str, Any]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    asgi = create_asgi(settings_for_tests(public_url=base), database_url=database_url)
    server = uvicorn.Server(
        uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    app = asgi.fastapi
    async with httpx.AsyncClient(base_url=base) as client:
        admin = await make_key(app, "admin")

        async def key(role: str, **kw: Any) -> dict[str, str]:
            return await make_key(app, role, **kw)

        data = await flows.world(client, admin, key)
        yield {"base": base, "app": app, "client": client, "admin": admin, "key": key, **data}
    server.should_exit = True
    await asyncio.wait_for(task, 20)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        await b.close()


async def shoot(page: Any, name: str) -> None:
    """The page at desktop width and at 375 px; at 375 px nothing may be wider than the screen."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    await page.set_viewport_size({"width": 375, "height": 800})
    await page.screenshot(path=str(SHOTS / f"{name}-375.png"), full_page=True)
    overflow = await page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 375, f"{name} is {overflow}px wide at 375px"
    await page.set_viewport_size({"width": 1280, "height": 900})


async def check_accessible(page: Any) -> None:
    """Every input has a label; headings do not skip a level."""
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
             .map(e => e.name || e.id)"""
    )
    assert unlabelled == []
    levels = await page.evaluate(
        "() => [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1])"
    )
    assert levels and levels[0] == 1
    for before, after in itertools.pairwise(levels):
        assert after <= before + 1, levels


async def sign_in(browser: Any, url: str) -> Any:
    context = await browser.new_context(accept_downloads=True)
    page = await context.new_page()
    await page.goto(url)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    return page


async def read_download(info: Any) -> str:
    path = await (await info.value).path()
    return await asyncio.to_thread(Path(path).read_text)


def value(text: str | None) -> Decimal | None:
    return None if not text else Decimal(text)


async def test_partner_overview_equals_the_api_and_a_link_is_made(live, browser):
    url = await flows.portal_link(live["client"], live["admin"], partner_id=live["a"]["id"])
    page = await sign_in(browser, url)
    assert page.url.endswith("/portal/partner")
    await check_accessible(page)
    cookie = next(c for c in await page.context.cookies() if c["name"] == "affiliate_portal")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]

    start = await page.get_attribute("#period-from", "datetime")
    end = await page.get_attribute("#period-to", "datetime")
    key = await live["key"]("partner", partner_id=live["a"]["id"])
    api = (
        await live["client"].get(
            "/v1/reports/performance",
            params={"program_id": live["program"]["id"], "from": start, "to": end},
            headers=key,
        )
    ).json()["totals"][0]
    shown = {
        name: await page.get_attribute(f"#{name}", "data-value")
        for name in ("clicks", "conversions", "conversion_rate", "epc", "revenue", "commission")
    }
    assert int(shown["clicks"]) == api["clicks"] == 3
    assert int(shown["conversions"]) == api["leads"] + api["sales"] == 2
    assert value(shown["conversion_rate"]) == value(api["conversion_rate"])
    assert value(shown["epc"]) == value(api["epc"])
    assert value(shown["revenue"]) == value(api["revenue"])
    assert value(shown["commission"]) == value(api["commission"])
    money = (
        await live["client"].get(
            "/v1/balances", params={"program_id": live["program"]["id"]}, headers=key
        )
    ).json()["items"][0]
    for name in ("payable", "pending", "on_hold", "paid"):
        assert value(await page.get_attribute(f"#{name}", "data-value")) == value(money[name])
    assert money["payable"] == "12.34" and money["on_hold"] == "8.00"
    assert "$12.34" in await page.text_content("#payable")
    assert await page.locator("svg.chart rect").count() >= 30
    assert await page.locator("#days tbody tr").count() >= 30
    await shoot(page, "partner-overview")
    await page.set_viewport_size({"width": 1100, "height": 800})
    await page.screenshot(path=str(SHOTS / "partner-overview-readme.png"))
    if os.environ.get("UPDATE_DOCS_IMAGE") == "1":
        await page.screenshot(path=str(DOCS_IMAGE))

    await page.get_by_role("link", name="Links").click()
    await page.get_by_label("Code (optional").fill(flows.unique("spring"))
    await page.get_by_label("Page to send visitors to").fill("https://shop.example/tents")
    await page.get_by_role("button", name="Make link").click()
    await page.wait_for_url("**/partner/links?made=*")
    made = page.locator("tr.made")
    assert await made.count() == 1
    new_url = await made.locator("input.copy-source").input_value()
    assert new_url.startswith(live["base"] + "/r/spring")
    assert "review" in await page.text_content("#sub1")  # the clicks' sub1
    await check_accessible(page)
    await shoot(page, "partner-links")

    # Outside the program's allowed domains: a page naming the field, nothing stored.
    await page.get_by_label("Page to send visitors to").fill("https://evil.example/")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Make link").click()
    assert "destination_url" in await page.text_content("main")

    await page.goto(live["base"] + "/portal/partner/conversions")
    text = await page.text_content("#conversions")
    assert live["held"]["order_id"] in text and live["accepted"]["order_id"] in text
    assert "fast_conversion" in text or "converted" in text
    await check_accessible(page)
    await shoot(page, "partner-conversions")


async def test_manager_approves_finance_pays_and_partner_downloads(live, browser):
    admin = await sign_in(
        browser, await flows.portal_link(live["client"], live["admin"], role="admin")
    )
    assert admin.url.endswith("/portal/manage")
    await check_accessible(admin)
    await shoot(admin, "manage-programs")
    await admin.get_by_role("link", name=live["program"]["name"]).click()
    ranked = await admin.text_content("#partners")
    assert live["a"]["name"] in ranked
    await check_accessible(admin)
    await shoot(admin, "manage-program")
    await admin.get_by_role("link", name="Review queue").click()
    card = admin.locator(f"[data-conversion-id='{live['held']['id']}']")
    await shoot(admin, "manage-review")
    await card.get_by_label("Reason").fill("checked with the shop")
    await card.get_by_role("button", name="Approve").click()
    assert "approved" in await admin.text_content(".notice")
    r = await live["client"].get(f"/v1/conversions/{live['held']['id']}", headers=live["admin"])
    assert r.json()["status"] == "accepted"
    assert r.json()["review_reason"] == "checked with the shop"

    fin = await sign_in(
        browser, await flows.portal_link(live["client"], live["admin"], role="finance")
    )
    assert fin.url.endswith("/portal/finance")
    await fin.get_by_label("Program").select_option(live["program"]["id"])
    await fin.get_by_role("button", name="Show").click()
    assert live["a"]["name"] in await fin.text_content("#preview")
    await check_accessible(fin)
    await shoot(fin, "finance-preview")
    # Submitted twice (the same form, its idempotency key): one run.
    form = await fin.evaluate(
        "() => Object.fromEntries(new FormData(document.querySelector('form[data-once]')))"
    )
    first = await fin.request.post(live["base"] + "/portal/finance/runs", form=form)
    again = await fin.request.post(live["base"] + "/portal/finance/runs", form=form)
    assert first.ok and again.ok and first.url == again.url
    await fin.goto(first.url)
    runs = (
        await live["client"].get(
            "/v1/payout-runs",
            params={"program_id": live["program"]["id"]},
            headers=await live["key"]("finance"),
        )
    ).json()["items"]
    assert len(runs) == 1
    payout = fin.locator("[data-payout-id]")
    assert await payout.count() == 1
    assert "$20.34" in await payout.text_content()
    async with fin.expect_download() as download_info:
        await fin.click("#run-csv")
    csv = await read_download(download_info)
    assert live["a"]["name"] in csv and '"20.34"' in csv
    await check_accessible(fin)
    await shoot(fin, "finance-run")
    await payout.get_by_label("Transfer reference").fill("bank-88121")
    await payout.get_by_role("button", name="Mark paid").click()
    assert "paid" in await fin.text_content("[data-payout-id]")
    await fin.get_by_role("link", name="Reconciliation").click()
    assert "Balanced" in await fin.text_content("#verdict")
    await shoot(fin, "finance-reconciliation")
    await fin.get_by_role("link", name="Payout runs").click()
    await shoot(fin, "finance-runs")

    partner = await sign_in(
        browser, await flows.portal_link(live["client"], live["admin"], partner_id=live["a"]["id"])
    )
    assert value(await partner.get_attribute("#paid", "data-value")) == Decimal("20.34")
    await partner.get_by_role("link", name="Payouts").click()
    assert "bank-88121" in await partner.text_content("#payouts")
    await shoot(partner, "partner-payouts")
    async with partner.expect_download() as download_info:
        await partner.get_by_role("link", name="Download as CSV").click()
    csv = await read_download(download_info)
    assert "bank-88121" in csv and '"20.34"' in csv

    await partner.get_by_role("button", name="Sign out").click()
    assert "Signed out" in await partner.text_content("h1")
    await partner.goto(live["base"] + "/portal/partner")
    assert "sign in" in (await partner.text_content("main")).lower()


async def test_a_second_partner_sees_none_of_the_first(live, browser):
    page = await sign_in(
        browser, await flows.portal_link(live["client"], live["admin"], partner_id=live["b"]["id"])
    )
    body = await page.text_content("main")
    assert live["program"]["name"] not in body
    await page.goto(live["base"] + "/portal/partner/links")
    body = await page.text_content("main")
    assert live["a_link"]["code"] not in body and live["b_link"]["code"] in body
    await page.goto(live["base"] + "/portal/partner/conversions")
    body = await page.text_content("main")
    assert live["held"]["order_id"] not in body and live["b_sale"]["order_id"] in body
    await page.goto(live["base"] + "/portal/partner/payouts")
    assert "No payouts yet" in await page.text_content("main")
    # The first partner's program is not there for the second: 404.
    r = await page.goto(live["base"] + f"/portal/partner?program_id={live['program']['id']}")
    assert r.status == 404
    # Nor are the managers' pages.
    r = await page.goto(live["base"] + f"/portal/manage/programs/{live['program']['id']}")
    assert r.status == 403


async def test_a_used_link_does_not_sign_in(live, browser):
    url = await flows.portal_link(live["client"], live["admin"], partner_id=live["a"]["id"])
    first = await sign_in(browser, url)
    assert first.url.endswith("/portal/partner")
    context = await browser.new_context()
    page = await context.new_page()
    r = await page.goto(url)
    assert r.status == 410
    assert "has been used" in await page.text_content("main")
    r = await page.goto(live["base"] + "/portal/partner")
    assert r.status == 401


async def test_a_form_without_its_csrf_token_is_refused(live, browser):
    page = await sign_in(
        browser, await flows.portal_link(live["client"], live["admin"], partner_id=live["a"]["id"])
    )
    await page.goto(live["base"] + "/portal/partner/links")
    before = await page.locator("#links tbody tr").count()
    form = {"program_id": live["program"]["id"], "code": flows.unique("nocsrf")}
    r = await page.request.post(live["base"] + "/portal/partner/links", form=form)
    assert r.status == 403
    assert "CSRF" in await r.text()
    r = await page.request.post(
        live["base"] + "/portal/partner/links", form={**form, "csrf_token": "0" * 64}
    )
    assert r.status == 403
    await page.reload()
    assert await page.locator("#links tbody tr").count() == before
