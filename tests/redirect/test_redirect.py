import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select, text

from service.models import ClickRollupHourly
from service.tracking.clickid import ClickIdInvalid, ClickIdSigner
from tests.factories import create_partner, create_program, unique
from tests.helpers import assert_problem, error_fields
from tests.links.factories import click_rows, click_token, create_link, wait_until

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
UA = {"user-agent": BROWSER}


@pytest.fixture
async def program(client, admin):
    return await create_program(client, admin)


@pytest.fixture
async def partner(client, admin):
    return await create_partner(client, admin)


async def _click(app, location, click_param="aff_click_id"):
    token = click_token(location, click_param)
    cid = app.state.click_signer.verify(token)
    rows = await click_rows(app, [cid.click_uuid])
    return cid, rows.get(cid.click_uuid)


async def test_redirect_records_the_click(app, client, admin, program, partner):
    link = await create_link(client, admin, program, partner, params=[["tag", "t1"]])
    r = await client.get(
        f"/r/{link['code']}", headers={**UA, "referer": "https://blog.example/post"}
    )
    assert r.status_code == 302
    assert r.headers["cache-control"] == "no-store"
    token = click_token(r.headers["location"])
    assert r.headers["location"] == f"https://shop.example/?aff_click_id={token}&tag=t1"
    cid, row = await _click(app, r.headers["location"])
    assert cid.link_id == uuid.UUID(link["id"])
    assert row is not None, "durable mode: the click is committed before the 302"
    assert row.click_token == token
    assert row.clicked_at == cid.clicked_at
    assert str(row.link_id) == link["id"]
    assert str(row.partner_id) == partner["id"]
    assert str(row.program_id) == program["id"]
    assert row.user_agent == BROWSER
    assert row.referer == "https://blog.example/post"
    assert row.is_bot is False and row.attributable is True
    assert row.ip_hash and row.visitor_hash and row.ip_hash != row.visitor_hash


async def test_head_answers_too_and_counts_as_a_bot(app, client, admin, program, partner):
    link = await create_link(client, admin, program, partner)
    r = await client.head(f"/r/{link['code']}", headers=UA)
    assert r.status_code == 302
    _, row = await _click(app, r.headers["location"])
    assert row.is_bot is True and row.attributable is False


async def test_other_methods_refused(client, admin, program, partner):
    link = await create_link(client, admin, program, partner)
    r = await client.post(f"/r/{link['code']}")
    assert_problem(r, 405)
    assert r.headers["allow"] == "GET, HEAD"


async def test_no_raw_ip_stored_anywhere(app, client, admin, program, partner):
    link = await create_link(client, admin, program, partner)
    r = await client.get(f"/r/{link['code']}", headers=UA)
    _, row = await _click(app, r.headers["location"])
    async with app.state.sessionmaker() as s:
        dump = await s.scalar(
            text("SELECT row_to_json(c)::text FROM clicks c WHERE id = :id"), {"id": row.id}
        )
    assert "127.0.0.1" not in dump
    assert b"127.0.0.1" not in (row.ip_hash or b"") + (row.visitor_hash or b"")
    columns = await _column_names(app, "clicks")
    assert not {"ip", "ip_address", "remote_addr", "client_ip"} & columns


async def _column_names(app, table):
    async with app.state.sessionmaker() as s:
        rows = await s.execute(
            text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"),
            {"t": table},
        )
    return {r[0] for r in rows}


async def test_passthrough_params_and_subs(app, client, admin, program, partner):
    link = await create_link(
        client,
        admin,
        program,
        partner,
        destination_url="https://shop.example/p?a=1&b=%7Ex+y&utm_source=dest",
        params=[["t", "1"], ["t", "2"]],
    )
    r = await client.get(
        f"/r/{link['code']}?sub1=a%20b&sub2=%C3%A9&foo=bar&utm_source=mail&utm_source=x&t=evil"
        "&sub6=no&aff_click_id=forged",
        headers=UA,
    )
    assert r.status_code == 302
    token = click_token(r.headers["location"])
    assert r.headers["location"] == (
        f"https://shop.example/p?a=1&b=%7Ex+y&aff_click_id={token}&t=1&t=2"
        "&sub1=a%20b&sub2=%C3%A9&utm_source=mail&utm_source=x"
    )
    _, row = await _click(app, r.headers["location"])
    assert (row.sub1, row.sub2, row.sub3) == ("a b", "é", None)


async def test_location_keeps_fragment_and_encodes(app, client, admin, program, partner):
    link = await create_link(
        client, admin, program, partner, destination_url="https://shop.example/ü-path#top"
    )
    r = await client.get(f"/r/{link['code']}?utm_campaign=a%26b%3Dc", headers=UA)
    token = click_token(r.headers["location"])
    assert r.headers["location"] == (
        f"https://shop.example/%C3%BC-path?aff_click_id={token}&utm_campaign=a%26b%3Dc#top"
    )


async def test_program_click_param(app, client, admin, partner):
    program = await create_program(client, admin, click_param="ref_id")
    link = await create_link(client, admin, program, partner)
    r = await client.get(f"/r/{link['code']}", headers=UA)
    assert r.headers["location"].startswith("https://shop.example/?ref_id=c2")
    _, row = await _click(app, r.headers["location"], "ref_id")
    assert row is not None


@pytest.mark.parametrize(
    "path", ["/r/", "/r/nope-nope-nope", "/r/bad.code", "/r/a/b", "/r/" + "x" * 65]
)
async def test_unknown_codes_404(client, path):
    r = await client.get(path)
    assert_problem(r, 404)
    assert r.headers["cache-control"] == "no-store"


async def test_paused_link_goes_to_fallback_without_a_click(app, client, admin, program, partner):
    link = await create_link(client, admin, program, partner, status="paused")
    r = await client.get(f"/r/{link['code']}", headers=UA)
    assert r.status_code == 302
    assert r.headers["location"] == "https://shop.example/fallback"


async def test_paused_link_without_fallback_is_404(client, admin, partner):
    program = await create_program(client, admin, fallback_url=None)
    link = await create_link(client, admin, program, partner, status="paused")
    assert_problem(await client.get(f"/r/{link['code']}"), 404)


async def test_expired_link(app, client, admin, program, partner):
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    link = await create_link(client, admin, program, partner, expires_at=later)
    r = await client.get(f"/r/{link['code']}", headers=UA)
    assert r.headers["location"].startswith("https://shop.example/?aff_click_id=")
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    r = await client.patch(f"/v1/links/{link['id']}", json={"expires_at": past}, headers=admin)
    assert r.status_code == 200

    async def expired() -> bool:
        r = await client.get(f"/r/{link['code']}", headers=UA)
        return r.headers["location"] == "https://shop.example/fallback"

    assert await wait_until(expired)


async def test_suspended_partner_redirects_but_never_attributes(
    app, client, admin, program, partner
):
    link = await create_link(client, admin, program, partner)
    r = await client.get(f"/r/{link['code']}", headers=UA)
    assert (await _click(app, r.headers["location"]))[1].attributable is True

    r = await client.patch(
        f"/v1/partners/{partner['id']}", json={"status": "suspended"}, headers=admin
    )
    assert r.status_code == 200, r.text
    locations = []

    async def unattributable() -> bool:
        r = await client.get(f"/r/{link['code']}", headers=UA)
        assert r.status_code == 302
        locations.append(r.headers["location"])
        return (await _click(app, r.headers["location"]))[1].attributable is False

    assert await wait_until(unattributable)
    assert locations[-1].startswith("https://shop.example/?aff_click_id=")


@pytest.mark.parametrize(
    "ua",
    [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "facebookexternalhit/1.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
        None,
    ],
)
async def test_bots_are_redirected_marked_and_excluded(app, client, admin, program, partner, ua):
    link = await create_link(client, admin, program, partner)
    headers = {"user-agent": ua} if ua else {"user-agent": ""}
    r = await client.get(f"/r/{link['code']}", headers=headers)
    assert r.status_code == 302
    _, row = await _click(app, r.headers["location"])
    assert row.is_bot is True and row.attributable is False
    rollup = await _rollup(app, link["id"])
    assert (rollup.clicks, rollup.unique_clicks, rollup.bots) == (0, 0, 1)


async def _rollup(app, link_id):
    async with app.state.sessionmaker() as s:
        return await s.scalar(
            select(ClickRollupHourly).where(ClickRollupHourly.link_id == uuid.UUID(link_id))
        )


async def test_rollup_counts_clicks_uniques_and_bots(app, client, admin, program, partner):
    link = await create_link(client, admin, program, partner)
    path = f"/r/{link['code']}"
    for _ in range(3):
        assert (await client.get(path, headers=UA)).status_code == 302
    assert (await client.get(path, headers={"user-agent": BROWSER + " Edg/120"})).status_code == 302
    assert (await client.get(path, headers={"user-agent": "Twitterbot/1.0"})).status_code == 302
    rollup = await _rollup(app, link["id"])
    assert (rollup.clicks, rollup.unique_clicks, rollup.bots) == (4, 2, 1)
    assert str(rollup.partner_id) == partner["id"] and str(rollup.program_id) == program["id"]
    assert rollup.hour.minute == 0 and rollup.hour.second == 0


async def test_deep_link_to_allowed_host(app, client, admin, program, partner):
    link = await create_link(client, admin, program, partner, params=[["tag", "x"]])
    target = "https://www.shop.example/item?id=7&c=a%20b"
    r = await client.get(f"/r/{link['code']}?url={quote(target, safe='')}&sub1=s", headers=UA)
    assert r.status_code == 302, r.text
    token = click_token(r.headers["location"])
    assert r.headers["location"] == (
        f"https://www.shop.example/item?id=7&c=a%20b&aff_click_id={token}&tag=x&sub1=s"
    )


OPEN_REDIRECTS = [
    "https://evil.test/",
    "https://shop.example@evil.test/",
    "https://shop.example:443@evil.test/",
    "https://user:pw@shop.example/",
    "https://evil.test/?x=shop.example",
    "https://shop.example.evil.test/",
    "https://evil.test%2F.shop.example/",
    "https://evil.test%2f@shop.example/",
    "https://evil.test\\@shop.example/",
    "https://evil.test\\.shop.example/",
    "//evil.test/",
    "///evil.test/",
    "/\\evil.test/",
    "https:evil.test",
    "https:/evil.test",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.domain)//https://shop.example/",
    "data:text/html,<script>alert(1)</script>",
    "ftp://shop.example/",
    "https://shop.example%00.evil.test/",
    "https://evil.test\t/",
    "https://evil.test\n.shop.example/",
    "https://0x7f.1/",
    "https://2130706433/",
    "https://[::1]/",
    "https://xn--shop-.example/",
    "",
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
async def test_open_redirects_refused(app, client, admin, program, partner, target):
    link = await create_link(client, admin, program, partner)
    r = await client.get(f"/r/{link['code']}?url={quote(target, safe='')}", headers=UA)
    assert error_fields(r, 400) == ["url"]
    assert "location" not in r.headers


@pytest.mark.parametrize(
    "raw_query",
    [
        "url=https://evil.test/",
        "url=https:%2F%2Fevil.test",
        "url=https%3A%2F%2Fevil.test%2F",
        "url=%2F%2Fevil.test",
        "url=https://shop.example%40evil.test/",
        "url=https://shop.example@evil.test",
        "url=https%3A%2F%2Fshop.example%252F%40evil.test",
    ],
)
async def test_open_redirects_refused_raw(client, admin, program, partner, raw_query):
    link = await create_link(client, admin, program, partner)
    r = await client.get(f"/r/{link['code']}?{raw_query}", headers=UA)
    assert error_fields(r, 400) == ["url"]


async def test_forged_or_altered_click_ids_fail(app, client, admin, program, partner):
    link = await create_link(client, admin, program, partner)
    r = await client.get(f"/r/{link['code']}", headers=UA)
    token = click_token(r.headers["location"])
    signer: ClickIdSigner = app.state.click_signer
    cid = signer.verify(token)
    assert cid.link_id == uuid.UUID(link["id"])

    # Every single-character change is refused.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(2, len(token)):
        swapped = alphabet[(alphabet.index(token[i]) + 1) % len(alphabet)]
        with pytest.raises(ClickIdInvalid):
            signer.verify(token[:i] + swapped + token[i + 1 :])
    # Another link id with the original tag: refused.
    forged = ClickIdSigner({"k0": b"x" * 32}, "k0").issue(uuid.uuid4(), datetime.now(UTC))
    with pytest.raises(ClickIdInvalid):
        signer.verify(forged.token)
    with pytest.raises(ClickIdInvalid):
        signer.verify(token[:-1])


async def test_country_and_client_ip_headers(database_url):
    """With a trusted edge, the address and country come from its headers."""
    import httpx

    from service.app import create_asgi
    from tests.conftest import make_key, settings_for_tests

    served = create_asgi(
        settings_for_tests(
            client_ip_header="X-Forwarded-For",
            trusted_proxies="127.0.0.0/8",
            country_header="CF-IPCountry",
        ),
        database_url=database_url,
    )
    app = served.fastapi
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://aff.test") as c:
            admin = await make_key(app, "admin")
            program = await create_program(c, admin)
            partner = await create_partner(c, admin)
            link = await create_link(c, admin, program, partner, code=unique("edge-"))
            h1 = {**UA, "x-forwarded-for": "203.0.113.9, 10.0.0.1", "cf-ipcountry": "de"}
            h2 = {**UA, "x-forwarded-for": "198.51.100.7", "cf-ipcountry": "T1"}
            r1 = await c.get(f"/r/{link['code']}", headers=h1)
            r2 = await c.get(f"/r/{link['code']}", headers=h2)
            _, row1 = await _click(app, r1.headers["location"])
            _, row2 = await _click(app, r2.headers["location"])
    assert row1.country == "DE" and row2.country is None
    assert row1.ip_hash != row2.ip_hash
    for row in (row1, row2):
        assert b"203.0.113.9" not in row.ip_hash and "203.0.113.9" not in (row.user_agent or "")
