"""Never inward: targets refused at write and at delivery, with AFFILIATE_WEBHOOK_ALLOW_PRIVATE off."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid

import pytest
from sqlalchemy import select, update

from service.config import Settings
from service.events import addresses
from service.events.outbox import emit
from service.models import EventDelivery, WebhookEndpoint
from tests.conftest import serving, settings_for_tests
from tests.events.receiver import receiving
from tests.factories import create_partner
from tests.helpers import assert_problem

REFUSED = [
    "http://127.0.0.1:8080/hook",
    "http://10.0.0.1:8080/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]:8080/hook",
    "http://localhost:8080/hook",  # a name that resolves to 127.0.0.1
    "http://[::ffff:10.0.0.1]:8080/",
    "http://0.0.0.0:8080/",
    "http://224.0.0.1:8080/",
    "http://240.0.0.1:8080/",
]


@pytest.fixture(scope="module")
async def served(database_url):
    settings = settings_for_tests(worker=True, worker_poll_seconds=0.05)
    assert settings.webhook_allow_private is False
    async with serving(settings, database_url) as s:
        yield s


@pytest.mark.parametrize("url", REFUSED)
async def test_an_inward_endpoint_url_is_refused_at_write(client, admin, url):
    r = await client.post(
        "/v1/webhook-endpoints", json={"url": url, "events": ["*"]}, headers=admin
    )
    body = assert_problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["url"]
    assert "non-public" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("http://93.184.215.14:22/", "port 22"),
        ("http://user:pw@93.184.215.14/", "credentials"),
        ("not a url", "only http and https"),
    ],
)
async def test_schemes_ports_and_credentials_are_refused(client, admin, url, why):
    r = await client.post(
        "/v1/webhook-endpoints", json={"url": url, "events": ["*"]}, headers=admin
    )
    body = assert_problem(r, 422)
    assert body["errors"][0]["field"] == "url" and why in body["errors"][0]["message"]


@pytest.mark.parametrize("url", REFUSED[:5])
async def test_an_inward_postback_is_refused_at_write(client, admin, url):
    partner = await create_partner(client, admin)
    r = await client.post(
        f"/v1/partners/{partner['id']}/postbacks",
        json={"url_template": url + "?c={conversion_id}", "events": ["conversion.created"]},
        headers=admin,
    )
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["url_template"]


async def test_patch_checks_the_url_too(client, admin, app):
    with receiving() as rx:
        async with app.state.sessionmaker() as session:
            endpoint = await _inward_endpoint(session, rx.url)
            await session.commit()
        r = await client.patch(
            f"/v1/webhook-endpoints/{endpoint.id}",
            json={"url": "http://10.1.2.3:8080/"},
            headers=admin,
        )
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["url"]


async def _inward_endpoint(session, url):
    from service.events.service import new_sealed_secret
    from service.kit.ids import new_id
    from service.kit.time import utc_now

    row_id = new_id()
    _, sealed = await new_sealed_secret(session, row_id, Settings())
    row = WebhookEndpoint(
        id=row_id,
        url=url,
        events=["partner.created"],
        status="enabled",
        secret_sealed=sealed,
        secret_set_at=utc_now(),
    )
    from service.events.outbox import subscribers_changed

    await subscribers_changed(session)
    session.add(row)
    await session.flush()
    return row


async def test_a_target_that_turns_inward_is_refused_at_delivery(client, admin, app):
    """What a rebinding name does: public when written, inward when delivered. The row is
    written straight to the table to stand for it; delivery resolves again and refuses."""
    with receiving() as rx:
        async with app.state.sessionmaker() as session:
            endpoint = await _inward_endpoint(session, f"http://localhost:{rx.port}/hook")
            await session.commit()
        await create_partner(client, admin)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while loop.time() < deadline:
            async with app.state.sessionmaker() as session:
                delivery = await session.scalar(
                    select(EventDelivery).where(EventDelivery.endpoint_id == endpoint.id)
                )
            if delivery is not None and delivery.attempts:
                break
            await asyncio.sleep(0.05)
        assert rx.all() == []
    assert delivery.status == "failed"
    assert delivery.last_error.startswith("refused: localhost resolves to a non-public address")
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint.id)
            .values(status="disabled")
        )
        await session.commit()


def test_address_classes():
    public = ipaddress.ip_address("93.184.215.14")
    assert addresses.refusal(public) is None
    for text, word in [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("ff02::1", "multicast"),
        ("100.64.0.1", "not a public"),  # carrier-grade NAT
    ]:
        why = addresses.refusal(ipaddress.ip_address(text))
        assert why is not None and word in why, (text, why)


def test_production_refuses_the_allow_setting():
    with pytest.raises(ValueError, match="ALLOW_PRIVATE"):
        Settings(
            env="production",
            database_url="postgresql://db/x",
            public_url="https://aff.example",
            webhook_allow_private=True,
        )


async def test_connects_to_the_checked_address_keeping_the_host():
    literal = await addresses.check("http://127.0.0.1:8080/x?y=1", allow_private=True)
    assert (
        str(literal.url) == "http://127.0.0.1:8080/x?y=1"
        and literal.host_header == "127.0.0.1:8080"
    )
    named = await addresses.check("https://localhost:8443/x", allow_private=True)
    assert named.url.host == named.address and named.address in ("127.0.0.1", "::1")
    assert named.host_header == "localhost:8443" and named.sni_hostname == "localhost"


async def test_emit_skips_when_nobody_wants_the_event(app):
    called = False

    async def build():
        nonlocal called
        called = True
        return {}

    async with app.state.sessionmaker() as session:
        got = await emit(
            session, "deal.created", program_id=uuid.uuid4(), partner_id=None, build=build
        )
        await session.rollback()
    assert got is None and called is False


def test_the_retry_schedule_setting_is_checked():
    assert Settings(webhook_retry_schedule="1, 2.5,60").webhook_retry_schedule
    for bad in ("a,b", "-1", "5,nan"):
        with pytest.raises(ValueError, match="RETRY_SCHEDULE"):
            Settings(webhook_retry_schedule=bad)
