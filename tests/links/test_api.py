from datetime import timedelta

import pytest

from service.kit.time import utc_now
from tests.conftest import make_key
from tests.factories import create_partner, create_program, unique
from tests.helpers import assert_problem, error_fields
from tests.links.factories import create_link, join_program


@pytest.fixture
async def program(client, admin):
    return await create_program(client, admin)


@pytest.fixture
async def partner(client, admin):
    return await create_partner(client, admin)


async def test_random_code_link_defaults(client, admin, program, partner):
    link = await create_link(client, admin, program, partner)
    assert len(link["code"]) >= 8
    assert all(c.isalnum() or c in "-_" for c in link["code"])
    assert link["url"] == f"http://aff.test/r/{link['code']}"
    assert link["destination_url"] == "https://shop.example/"
    assert link["status"] == "active"
    assert link["params"] == []
    assert link["expires_at"] is None
    assert link["program_id"] == program["id"] and link["partner_id"] == partner["id"]


async def test_random_codes_differ(client, admin, program, partner):
    codes = {(await create_link(client, admin, program, partner))["code"] for _ in range(5)}
    assert len(codes) == 5


async def test_vanity_code_and_fields(client, admin, program, partner):
    code = unique("Summer-")
    expires = (utc_now() + timedelta(days=3)).isoformat()
    link = await create_link(
        client,
        admin,
        program,
        partner,
        code=code,
        destination_url="https://www.shop.example/sale?x=1",
        params={"utm_source": "aff", "ref": "a b"},
        expires_at=expires,
        status="paused",
    )
    assert link["code"] == code
    assert link["url"].endswith(f"/r/{code}")
    assert link["destination_url"] == "https://www.shop.example/sale?x=1"
    assert link["params"] == [["utm_source", "aff"], ["ref", "a b"]]
    assert link["status"] == "paused"
    assert link["expires_at"] is not None


async def test_params_as_pairs_keep_order_and_repeats(client, admin, program, partner):
    link = await create_link(
        client, admin, program, partner, params=[["t", "1"], ["t", "2"], ["a", "x"]]
    )
    assert link["params"] == [["t", "1"], ["t", "2"], ["a", "x"]]


async def test_vanity_codes_are_unique_and_case_sensitive(client, admin, program, partner):
    code = unique("Dup")
    await create_link(client, admin, program, partner, code=code)
    r = await client.post(
        "/v1/links",
        json={"program_id": program["id"], "partner_id": partner["id"], "code": code},
        headers=admin,
    )
    assert error_fields(r, 409) == ["code"]
    # A code differing only in case is another code.
    await create_link(client, admin, program, partner, code=code.lower())


@pytest.mark.parametrize(
    "code", ["api", "V1", "r", "admin", "healthz", "readyz", "metrics", "docs", "static"]
)
async def test_reserved_codes_refused(client, admin, program, partner, code):
    r = await client.post(
        "/v1/links",
        json={"program_id": program["id"], "partner_id": partner["id"], "code": code},
        headers=admin,
    )
    assert error_fields(r) == ["code"]


@pytest.mark.parametrize("code", ["ab", "has space", "slash/x", "dot.x", "é-code", "x" * 65, ""])
async def test_malformed_vanity_codes_refused(client, admin, program, partner, code):
    r = await client.post(
        "/v1/links",
        json={"program_id": program["id"], "partner_id": partner["id"], "code": code},
        headers=admin,
    )
    assert error_fields(r) == ["code"]


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/",
        "https://shop.example@evil.test/",
        "javascript:alert(1)",
        "//evil.test/",
        "https://shop.example.evil.test/",
        "ftp://shop.example/",
        "not a url",
    ],
)
async def test_destination_must_be_on_allowed_domains(client, admin, program, partner, url):
    r = await client.post(
        "/v1/links",
        json={"program_id": program["id"], "partner_id": partner["id"], "destination_url": url},
        headers=admin,
    )
    assert error_fields(r) == ["destination_url"]


async def test_destination_is_normalised(client, admin, program, partner):
    link = await create_link(
        client, admin, program, partner, destination_url="HTTPS://Shop.Example:443/p?q=1"
    )
    assert link["destination_url"] == "https://shop.example:443/p?q=1"


async def test_bad_inputs_name_their_field(client, admin, program, partner):
    base = {"program_id": program["id"], "partner_id": partner["id"]}
    cases = [
        ({"params": [["only-key"]]}, "params[0]"),
        ({"params": {"aff_click_id": "x"}}, "params.aff_click_id"),
        ({"params": {"bad key": "x"}}, "params.bad key"),
        ({"expires_at": (utc_now() - timedelta(days=1)).isoformat()}, "expires_at"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"status": "deleted"}, "status"),
        ({"partner_id": "00000000-0000-7000-8000-000000000000"}, "partner_id"),
        ({"program_id": "00000000-0000-7000-8000-000000000000"}, "program_id"),
        ({"program_id": "nope"}, "program_id"),
    ]
    for extra, field in cases:
        r = await client.post("/v1/links", json={**base, **extra}, headers=admin)
        assert field in error_fields(r), (extra, r.text)
    r = await client.post("/v1/links", json={"program_id": program["id"]}, headers=admin)
    assert error_fields(r) == ["partner_id"]


async def test_get_patch_list(client, admin, program, partner):
    link = await create_link(client, admin, program, partner)
    r = await client.get(f"/v1/links/{link['id']}", headers=admin)
    assert r.status_code == 200 and r.json() == link

    r = await client.patch(
        f"/v1/links/{link['id']}",
        json={"status": "paused", "destination_url": "https://shop.example/new", "params": None},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paused"
    assert r.json()["destination_url"] == "https://shop.example/new"
    assert r.json()["code"] == link["code"]

    r = await client.patch(f"/v1/links/{link['id']}", json={"code": "other"}, headers=admin)
    assert error_fields(r) == ["code"]
    r = await client.patch(
        f"/v1/links/{link['id']}", json={"destination_url": "https://evil.test/"}, headers=admin
    )
    assert error_fields(r) == ["destination_url"]
    r = await client.patch(f"/v1/links/{link['id']}", json={"status": None}, headers=admin)
    assert error_fields(r) == ["status"]

    other = await create_link(client, admin, program, partner)
    r = await client.get(
        "/v1/links", params={"program_id": program["id"], "status": "paused"}, headers=admin
    )
    ids = [item["id"] for item in r.json()["items"]]
    assert link["id"] in ids and other["id"] not in ids

    r = await client.get(
        "/v1/links", params={"partner_id": partner["id"], "limit": 1}, headers=admin
    )
    page1 = r.json()
    assert len(page1["items"]) == 1 and page1["next_cursor"]
    r = await client.get(
        "/v1/links",
        params={"partner_id": partner["id"], "limit": 1, "cursor": page1["next_cursor"]},
        headers=admin,
    )
    assert r.json()["items"][0]["id"] != page1["items"][0]["id"]


async def test_unknown_link_is_404(client, admin):
    r = await client.get("/v1/links/00000000-0000-7000-8000-000000000000", headers=admin)
    assert_problem(r, 404)


async def test_partner_keys_see_and_make_only_their_own(app, client, admin, program):
    mine = await create_partner(client, admin)
    theirs = await create_partner(client, admin)
    key = await make_key(app, "partner", partner_id=mine["id"])

    # Not in the program yet: the program does not exist for this partner.
    r = await client.post("/v1/links", json={"program_id": program["id"]}, headers=key)
    assert_problem(r, 404)

    await join_program(app, mine["id"], program["id"])
    own = await create_link(client, key, program, None, code=unique("mine-"))
    assert own["partner_id"] == mine["id"]

    r = await client.post(
        "/v1/links", json={"program_id": program["id"], "partner_id": theirs["id"]}, headers=key
    )
    assert error_fields(r) == ["partner_id"]

    foreign = await create_link(client, admin, program, theirs)
    assert_problem(await client.get(f"/v1/links/{foreign['id']}", headers=key), 404)
    r = await client.patch(f"/v1/links/{foreign['id']}", json={"status": "paused"}, headers=key)
    assert_problem(r, 404)

    r = await client.patch(f"/v1/links/{own['id']}", json={"status": "paused"}, headers=key)
    assert r.status_code == 200 and r.json()["status"] == "paused"

    r = await client.get("/v1/links", headers=key)
    ids = {item["id"] for item in r.json()["items"]}
    assert own["id"] in ids and foreign["id"] not in ids
    r = await client.get("/v1/links", params={"partner_id": theirs["id"]}, headers=key)
    assert r.json()["items"] == []


async def test_partner_with_ended_agreement_cannot_link(app, client, admin, program):
    partner = await create_partner(client, admin)
    await join_program(
        app, partner["id"], program["id"], terminated_at=utc_now() - timedelta(days=1)
    )
    key = await make_key(app, "partner", partner_id=partner["id"])
    r = await client.post("/v1/links", json={"program_id": program["id"]}, headers=key)
    assert_problem(r, 404)


async def test_other_roles_cannot_touch_links(app, client, admin, program, partner):
    finance = await make_key(app, "finance")
    assert_problem(await client.get("/v1/links", headers=finance), 403)
    assert_problem(await client.get("/v1/links"), 401)


async def test_suspended_partner_gets_no_new_links(client, admin, program):
    partner = await create_partner(client, admin, status="suspended")
    r = await client.post(
        "/v1/links", json={"program_id": program["id"], "partner_id": partner["id"]}, headers=admin
    )
    assert error_fields(r) == ["partner_id"]
