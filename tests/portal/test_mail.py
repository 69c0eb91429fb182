"""The sign-in email, sent to a local SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from service.models import PortalLink
from tests.conftest import make_key, serving, settings_for_tests
from tests.factories import create_partner
from tests.helpers import assert_problem, free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


async def test_a_partners_link_is_emailed_when_smtp_is_set(database_url, smtp):
    controller, inbox = smtp
    settings = settings_for_tests(
        smtp_url=f"smtp://127.0.0.1:{controller.port}", smtp_from="portal@aff.test"
    )
    async with serving(settings, database_url) as s, s.client() as client:
        admin = await make_key(s.app, "admin")
        partner = await create_partner(client, admin)
        r = await client.post("/v1/portal-links", json={"partner_id": partner["id"]}, headers=admin)
        assert r.status_code == 201, r.text
        assert r.json()["emailed_to"] == partner["email"]
        (to, msg) = inbox.messages[-1]
        assert to == [partner["email"]] and msg["From"] == "portal@aff.test"
        assert r.json()["url"] in msg.get_payload()
        # Roles have no address: answered, not emailed.
        r = await client.post("/v1/portal-links", json={"role": "finance"}, headers=admin)
        assert r.status_code == 201 and r.json()["emailed_to"] is None
        assert len(inbox.messages) == 1


async def test_no_email_without_smtp_and_a_503_when_the_server_is_down(database_url, client, admin):
    partner = await create_partner(client, admin)
    r = await client.post("/v1/portal-links", json={"partner_id": partner["id"]}, headers=admin)
    assert r.status_code == 201 and r.json()["emailed_to"] is None
    settings = settings_for_tests(smtp_url=f"smtp://127.0.0.1:{free_port()}")
    async with serving(settings, database_url) as s, s.client() as c:
        async with s.app.state.sessionmaker() as session:
            before = await session.scalar(select(func.count()).select_from(PortalLink))
        r = await c.post("/v1/portal-links", json={"partner_id": partner["id"]}, headers=admin)
        assert_problem(r, 503)
        async with s.app.state.sessionmaker() as session:
            after = await session.scalar(select(func.count()).select_from(PortalLink))
        assert after == before
