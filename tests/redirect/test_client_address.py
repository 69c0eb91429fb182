"""The visitor's address: the client IP header counts only from a trusted proxy, and then
only its right-most entry that is not one of our proxies."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from service.app import create_asgi
from service.config import Settings
from service.kit.clientip import ClientAddress
from tests.conftest import make_key, settings_for_tests
from tests.factories import create_partner, create_program, unique
from tests.links.factories import click_rows, click_token, create_link

UA = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
PROXIES = "10.0.0.0/8, 2001:db8::/32"


def test_right_most_untrusted_entry_from_a_trusted_peer():
    ca = ClientAddress(PROXIES)
    # An untrusted peer's header is ignored, whatever it says.
    assert ca.resolve("198.51.100.7", ["203.0.113.9"]) == "198.51.100.7"
    # From a proxy: the entry its own proxies did not write, however much is prepended.
    assert ca.resolve("10.0.0.2", ["1.1.1.1, 203.0.113.9, 10.0.0.1"]) == "203.0.113.9"
    assert ca.resolve("10.0.0.2", ["evil, 203.0.113.9", "10.9.9.9"]) == "203.0.113.9"
    assert ca.resolve("10.0.0.2", ["203.0.113.9, not-an-ip, 10.0.0.1"]) == "203.0.113.9"
    assert ca.resolve("2001:db8::1", ["2001:db9::5, [2001:db8:ffff::1]"]) == "2001:db9::5"
    assert ca.resolve("::ffff:10.0.0.2", ["203.0.113.9"]) == "203.0.113.9"
    # Nothing usable in the header: the peer.
    assert ca.resolve("10.0.0.2", ["garbage, 10.0.0.1", ""]) == "10.0.0.2"
    assert ClientAddress("").resolve("10.0.0.2", ["203.0.113.9"]) == "10.0.0.2"


@pytest.mark.parametrize(
    ("header", "visitor"),
    [
        (" 203.0.113.9 ", "203.0.113.9"),
        # Not a dotted quad as ipaddress writes it: not an address, as ipaddress has it.
        ("203.0.113.9, 010.0.0.1", "203.0.113.9"),
        ("203.0.113.9, 1.2.3", "203.0.113.9"),
        ("203.0.113.9, 256.0.0.1", "203.0.113.9"),
        # The same address however it is written: the one canonical text.
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("[::ffff:203.0.113.9]", "203.0.113.9"),
        ("2001:DB9:0::5", "2001:db9::5"),
        ("203.0.113.9, ::ffff:10.0.0.1", "203.0.113.9"),
    ],
)
def test_visitor_address_as_ipaddress_writes_it(header: str, visitor: str):
    assert ClientAddress(PROXIES).resolve("10.0.0.2", [header]) == visitor


def test_trusted_proxies_are_validated_at_startup():
    with pytest.raises(ValidationError, match=r"10\.0\.0\.0/33"):
        Settings(trusted_proxies="10.0.0.0/8, 10.0.0.0/33")
    with pytest.raises(ValidationError, match="AFFILIATE_TRUSTED_PROXIES"):
        Settings(client_ip_header="X-Forwarded-For")
    assert Settings(trusted_proxies=" 10.0.0.0/8 ,::1 ").trusted_proxies


async def _ip_hash(served, peer: str, link: dict, forwarded: str | None) -> bytes:
    app = served.fastapi
    transport = httpx.ASGITransport(app=served, client=(peer, 40000))
    headers = {**UA, **({"x-forwarded-for": forwarded} if forwarded is not None else {})}
    async with httpx.AsyncClient(transport=transport, base_url="http://aff.test") as c:
        r = await c.get(f"/r/{link['code']}", headers=headers)
    assert r.status_code == 302, r.text
    cid = app.state.click_signer.verify(click_token(r.headers["location"]))
    row = (await click_rows(app, [cid.click_uuid]))[cid.click_uuid]
    return row.ip_hash


async def test_one_client_cannot_pose_as_many_visitors(database_url):
    served = create_asgi(
        settings_for_tests(client_ip_header="X-Forwarded-For", trusted_proxies=PROXIES),
        database_url=database_url,
    )
    app = served.fastapi
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://aff.test") as c:
            admin = await make_key(app, "admin")
            program = await create_program(c, admin)
            partner = await create_partner(c, admin)
            link = await create_link(c, admin, program, partner, code=unique("xff-"))
        # Through our proxy, a visitor prepending made-up addresses is still one visitor.
        via_proxy = {
            await _ip_hash(served, "10.0.0.2", link, f"192.0.2.{i}, 203.0.113.9, 10.0.0.1")
            for i in range(5)
        }
        assert len(via_proxy) == 1
        assert via_proxy == {await _ip_hash(served, "10.0.0.3", link, "203.0.113.9")}
        # Straight from the internet, the header is the visitor's own word: ignored.
        direct = {await _ip_hash(served, "198.51.100.7", link, f"192.0.2.{i}") for i in range(5)}
        assert direct == {await _ip_hash(served, "198.51.100.7", link, None)}
        assert direct != via_proxy
