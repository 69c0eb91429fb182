"""No redirect outside the program: fallback_url, allowed_domains entries, ports."""

from urllib.parse import quote

import pytest

from tests.factories import create_partner, create_program
from tests.helpers import assert_problem, error_fields
from tests.links.factories import create_link

UA = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"}
BASE = {"name": "Shop", "currency": "USD", "default_url": "https://shop.example/"}


async def test_fallback_url_must_be_on_an_allowed_domain(client, admin):
    r = await client.post(
        "/v1/programs", json={**BASE, "fallback_url": "https://evil.example/"}, headers=admin
    )
    assert error_fields(r) == ["fallback_url"]
    program = await create_program(client, admin)
    r = await client.patch(
        f"/v1/programs/{program['id']}",
        json={"fallback_url": "https://evil.example/"},
        headers=admin,
    )
    assert error_fields(r) == ["fallback_url"]
    # Narrowing the domains below the fallback is refused too.
    r = await client.patch(
        f"/v1/programs/{program['id']}",
        json={"default_url": "https://www.shop.example/", "allowed_domains": ["www.shop.example"]},
        headers=admin,
    )
    assert error_fields(r) == ["fallback_url"]


@pytest.mark.parametrize(
    "entry",
    ["*.com", "*", "*.", "*.co", "shop.*", "10.0.0.1", "::1", "[::1]:8080", "shop.example:0"],
)
async def test_allowed_domains_entries_are_host_names(client, admin, entry):
    r = await client.post(
        "/v1/programs", json={**BASE, "allowed_domains": ["shop.example", entry]}, headers=admin
    )
    assert "allowed_domains[1]" in error_fields(r)


@pytest.mark.parametrize("entry", ["shop.example:8443", "*.co.uk", "*.shop.example:8443"])
async def test_allowed_domains_accepts(client, admin, entry):
    r = await client.post(
        "/v1/programs", json={**BASE, "allowed_domains": ["shop.example", entry]}, headers=admin
    )
    assert r.status_code == 201, r.text


async def test_default_url_on_a_port_lists_host_and_port(client, admin):
    r = await client.post(
        "/v1/programs", json={**BASE, "default_url": "https://shop.example:8443/"}, headers=admin
    )
    assert r.status_code == 201, r.text
    assert r.json()["allowed_domains"] == ["shop.example:8443"]
    r = await client.post(
        "/v1/programs",
        json={
            **BASE,
            "default_url": "https://shop.example:8443/",
            "allowed_domains": ["shop.example"],
        },
        headers=admin,
    )
    assert error_fields(r) == ["default_url"]


async def test_link_destination_on_a_port_needs_host_port(client, admin):
    partner = await create_partner(client, admin)
    program = await create_program(client, admin)
    body = {
        "program_id": program["id"],
        "partner_id": partner["id"],
        "destination_url": "https://shop.example:8443/p",
    }
    r = await client.post("/v1/links", json=body, headers=admin)
    assert error_fields(r) == ["destination_url"]
    program = await create_program(
        client, admin, allowed_domains=["shop.example", "shop.example:8443"]
    )
    r = await client.post("/v1/links", json={**body, "program_id": program["id"]}, headers=admin)
    assert r.status_code == 201, r.text


async def test_deep_link_to_another_port_only_where_listed(client, admin):
    partner = await create_partner(client, admin)
    plain = await create_program(client, admin)
    listed = await create_program(
        client, admin, allowed_domains=["shop.example", "*.shop.example", "shop.example:8443"]
    )
    target = quote("https://shop.example:8443/sale", safe="")
    link = await create_link(client, admin, plain, partner)
    r = await client.get(f"/r/{link['code']}?url={target}", headers=UA)
    assert assert_problem(r, 400)["errors"] == [{"field": "url", "message": "port not allowed"}]

    link = await create_link(client, admin, listed, partner)
    r = await client.get(f"/r/{link['code']}?url={target}", headers=UA)
    assert r.status_code == 302
    assert r.headers["location"].startswith("https://shop.example:8443/sale?aff_click_id=")
    r = await client.get(f"/r/{link['code']}?url={quote('https://shop.example:9/', safe='')}")
    assert_problem(r, 400)


async def test_stored_off_domain_fallback_is_not_followed(app, client, admin):
    from sqlalchemy import text

    partner = await create_partner(client, admin)
    program = await create_program(client, admin)
    link = await create_link(client, admin, program, partner, status="paused")
    # As stored before fallback_url had to be on an allowed domain.
    async with app.state.sessionmaker() as session:
        await session.execute(
            text("UPDATE programs SET fallback_url = 'https://evil.example/' WHERE id = :id"),
            {"id": program["id"]},
        )
        await session.commit()
    r = await client.get(f"/r/{link['code']}", headers=UA)
    assert_problem(r, 404)
    # The program stays editable in its other settings.
    r = await client.patch(f"/v1/programs/{program['id']}", json={"hold_days": 3}, headers=admin)
    assert r.status_code == 200, r.text
