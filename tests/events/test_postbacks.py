"""Partner postbacks: the partner's own key, macros URL-encoded, only its own events."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from standardwebhooks import Webhook

from tests.conftest import make_key, serving, settings_for_tests
from tests.conversions.factories import TEN_PERCENT, add_promo, sale, setup
from tests.events.receiver import receiving
from tests.factories import create_partner
from tests.helpers import assert_problem


@pytest.fixture(scope="module")
async def served(database_url):
    settings = settings_for_tests(worker=True, webhook_allow_private=True, worker_poll_seconds=0.05)
    async with serving(settings, database_url) as s:
        yield s


async def _partner_key(app, partner):
    return await make_key(app, "partner", partner_id=uuid.UUID(partner["id"]))


async def test_a_partner_gets_its_conversions_with_macros_filled(client, app, admin):
    program, partner = await setup(client, admin, terms=TEN_PERCENT)
    other = await create_partner(client, admin)
    code = await add_promo(app, program["id"], partner["id"])
    merchant = await make_key(app, "merchant", program_ids=[uuid.UUID(program["id"])])
    own, others = await _partner_key(app, partner), await _partner_key(app, other)
    with receiving() as rx:
        template = (
            f"{rx.url}/pb?e={{event}}&c={{conversion_id}}&amt={{amount}}&com={{commission}}"
            "&cur={currency}&s={status}&t={type}&at={occurred_at}&s1={sub1}"
        )
        r = await client.post(
            f"/v1/partners/{partner['id']}/postbacks",
            json={"url_template": template, "events": ["conversion.created"]},
            headers=own,
        )
        assert r.status_code == 201, r.text
        pb = r.json()
        # The other partner's postback must see none of it.
        r = await client.post(
            f"/v1/partners/{other['id']}/postbacks",
            json={
                "url_template": f"{rx.url}/other?c={{conversion_id}}",
                "events": ["conversion.created"],
            },
            headers=others,
        )
        assert r.status_code == 201, r.text
        conv = await client.post(
            "/v1/conversions",
            json=sale(program, promo_code=code, amount="123.45", metadata={"x": "a&b"}),
            headers=merchant,
        )
        assert conv.status_code == 201, conv.text
        [got] = await rx.wait_for(1)
        await asyncio.sleep(0.3)
        assert len(rx.all()) == 1
    assert got.method == "GET" and got.path.startswith("/pb?")
    query = parse_qs(urlsplit(got.path).query, keep_blank_values=True)
    occurred = conv.json()["occurred_at"]
    assert query == {
        "e": ["conversion.created"],
        "c": [conv.json()["id"]],
        "amt": ["123.45"],
        "com": ["12.34"],
        "cur": ["USD"],
        "s": ["accepted"],
        "t": ["sale"],
        "at": [occurred],
        "s1": [""],
    }
    # Values are percent-encoded: the timestamp's "+" or ":" never breaks the query.
    assert "%3A" in got.path
    Webhook(pb["secret"]).verify(b"", got.headers, json_parse=False)
    r = await client.get(
        f"/v1/partners/{partner['id']}/postbacks/{pb['id']}/deliveries", headers=own
    )
    assert r.status_code == 200
    [d] = r.json()["items"]
    assert d["url"] == f"{rx.url}{got.path}" and d["event_type"] == "conversion.created"


async def test_an_unknown_macro_is_a_422(client, app, admin):
    partner = await create_partner(client, admin)
    r = await client.post(
        f"/v1/partners/{partner['id']}/postbacks",
        json={
            "url_template": "http://127.0.0.1:8080/pb?x={payout}&c={conversion_id}",
            "events": ["conversion.created"],
        },
        headers=admin,
    )
    body = assert_problem(r, 422)
    assert (
        body["errors"][0]["field"] == "url_template" and "{payout}" in body["errors"][0]["message"]
    )
    r = await client.post(
        f"/v1/partners/{partner['id']}/postbacks",
        json={"url_template": "http://{sub1}.example.com/pb", "events": ["conversion.created"]},
        headers=admin,
    )
    assert assert_problem(r, 422)["errors"][0]["field"] == "url_template"
    r = await client.post(
        f"/v1/partners/{partner['id']}/postbacks",
        json={"url_template": "http://127.0.0.1:8080/pb", "events": ["payout.paid"]},
        headers=admin,
    )
    assert assert_problem(r, 422)["errors"][0]["field"] == "events"


async def test_a_partner_sees_only_its_own_postbacks(client, app, admin):
    partner, other = await create_partner(client, admin), await create_partner(client, admin)
    own, others = await _partner_key(app, partner), await _partner_key(app, other)
    r = await client.post(
        f"/v1/partners/{partner['id']}/postbacks",
        json={
            "url_template": "http://127.0.0.1:8080/pb?c={conversion_id}",
            "events": ["conversion.created"],
        },
        headers=own,
    )
    assert r.status_code == 201, r.text
    pb = r.json()
    base = f"/v1/partners/{partner['id']}/postbacks"
    assert_problem(await client.get(f"{base}/{pb['id']}", headers=others), 404)
    assert_problem(await client.get(f"{base}/{pb['id']}/deliveries", headers=others), 404)
    assert_problem(
        await client.patch(f"{base}/{pb['id']}", json={"status": "disabled"}, headers=others), 404
    )
    assert_problem(await client.get(base, headers=others), 404)
    assert_problem(
        await client.post(
            base,
            json={"url_template": "http://127.0.0.1:8080/x", "events": ["conversion.created"]},
            headers=others,
        ),
        404,
    )
    # Under another partner's path, even its own id is not found.
    assert_problem(
        await client.get(f"/v1/partners/{other['id']}/postbacks/{pb['id']}", headers=others), 404
    )
    assert (await client.get(f"{base}/{pb['id']}", headers=admin)).status_code == 200
    r = await client.patch(
        f"{base}/{pb['id']}",
        json={"events": ["conversion.approved", "conversion.rejected"]},
        headers=own,
    )
    assert r.status_code == 200 and r.json()["events"] == [
        "conversion.approved",
        "conversion.rejected",
    ]
    r = await client.post(f"{base}/{pb['id']}/rotate-secret", headers=own)
    assert r.status_code == 200 and r.json()["secret"].startswith("whsec_")
