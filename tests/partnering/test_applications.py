"""Applications: the public form (no key, rate limited), approval and rejection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.models import Agreement, AuditEvent, Link
from tests.conftest import Started, serving, settings_for_tests
from tests.conversions.factories import TEN_PERCENT
from tests.factories import create_program, unique
from tests.helpers import assert_problem, error_fields
from tests.partnering.factories import member


@pytest.fixture(scope="module")
async def served(database_url: str) -> AsyncIterator[Started]:
    # Every test client calls from one address: this module's own limit is tested apart.
    async with serving(settings_for_tests(application_limit="1000/minute"), database_url) as s:
        yield s


def form(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Jane's Reviews",
        "email": f"{unique('jane')}@reviews.example",
        "website": "https://reviews.example/",
        "message": "We review kitchen gear.",
    }
    body.update(overrides)
    return body


async def test_public_form_takes_no_key_and_answers_pending(client, admin):
    program = await create_program(client, admin)
    r = await client.post(f"/v1/programs/{program['id']}/applications", json=form())
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"
    assert set(r.json()) == {"id", "status"}


async def test_bad_email_and_url_are_422s_naming_the_field(client, admin):
    program = await create_program(client, admin)
    url = f"/v1/programs/{program['id']}/applications"
    assert "email" in error_fields(await client.post(url, json=form(email="not-an-email")))
    assert "website" in error_fields(await client.post(url, json=form(website="ftp://x.example")))
    assert "website" in error_fields(await client.post(url, json=form(website="no url")))


async def test_unknown_program_is_404(client):
    r = await client.post(f"/v1/programs/{uuid.uuid4()}/applications", json=form())
    assert_problem(r, 404)


async def test_second_pending_application_of_an_email_is_409(client, admin):
    program = await create_program(client, admin)
    other = await create_program(client, admin)
    body = form()
    url = f"/v1/programs/{program['id']}/applications"
    assert (await client.post(url, json=body)).status_code == 201
    shouted = {**body, "email": body["email"].upper()}
    r = await client.post(url, json=shouted)
    assert "email" in error_fields(r, 409)
    # Another program is another application.
    r = await client.post(f"/v1/programs/{other['id']}/applications", json=body)
    assert r.status_code == 201


async def test_approve_creates_partner_agreement_and_link_in_one_go(client, admin, app):
    program = await create_program(client, admin)
    body = form()
    r = await client.post(f"/v1/programs/{program['id']}/applications", json=body)
    app_id = r.json()["id"]
    r = await client.get("/v1/applications?status=pending", headers=admin)
    assert app_id in [a["id"] for a in r.json()["items"]]

    r = await client.post(
        f"/v1/applications/{app_id}/approve", json={"terms": TEN_PERCENT}, headers=admin
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "approved"
    partner = (await client.get(f"/v1/partners/{out['partner_id']}", headers=admin)).json()
    assert partner["email"] == body["email"].lower()
    assert partner["status"] == "active"
    async with app.state.sessionmaker() as session:
        agreement = await session.get(Agreement, uuid.UUID(out["agreement_id"]))
        link = await session.get(Link, uuid.UUID(out["link_id"]))
        assert agreement is not None and str(agreement.program_id) == program["id"]
        assert link is not None and str(link.partner_id) == out["partner_id"]
    # Decided once: a second decision is a 409; the list by status moved.
    r = await client.post(f"/v1/applications/{app_id}/reject", json={"reason": "x"}, headers=admin)
    assert_problem(r, 409)
    r = await client.get("/v1/applications?status=approved", headers=admin)
    listed = next(a for a in r.json()["items"] if a["id"] == app_id)
    assert listed == out
    # Approved, it no longer blocks a new application of that email.
    r = await client.post(f"/v1/programs/{program['id']}/applications", json=body)
    assert r.status_code == 201


async def test_approval_with_bad_terms_creates_nothing(client, admin, app):
    program = await create_program(client, admin)
    body = form()
    app_id = (await client.post(f"/v1/programs/{program['id']}/applications", json=body)).json()[
        "id"
    ]
    bad = {"rules": [{"event": "sale", "type": "percent", "percent": "ten"}]}
    r = await client.post(f"/v1/applications/{app_id}/approve", json={"terms": bad}, headers=admin)
    assert r.status_code == 422, r.text
    r = await client.get("/v1/partners", headers=admin, params={"limit": 200})
    assert body["email"].lower() not in [p["email"] for p in r.json()["items"]]
    r = await client.get(f"/v1/applications/{app_id}", headers=admin)
    assert r.json()["status"] == "pending"


async def test_reject_keeps_the_reason(client, admin, app):
    program = await create_program(client, admin)
    app_id = (await client.post(f"/v1/programs/{program['id']}/applications", json=form())).json()[
        "id"
    ]
    r = await client.post(
        f"/v1/applications/{app_id}/reject", json={"reason": "no audience"}, headers=admin
    )
    assert r.status_code == 200
    assert r.json()["status"] == "rejected" and r.json()["reason"] == "no audience"
    r = await client.get("/v1/applications?status=rejected", headers=admin)
    assert {"id": app_id, "reason": "no audience"}.items() <= next(
        a for a in r.json()["items"] if a["id"] == app_id
    ).items()
    async with app.state.sessionmaker() as session:
        from sqlalchemy import select

        actions = (
            await session.scalars(
                select(AuditEvent.action).where(AuditEvent.object_id == uuid.UUID(app_id))
            )
        ).all()
    assert set(actions) == {"application.created", "application.rejected"}


async def test_only_admins_list_and_decide(client, admin, app):
    _, _, partner_key = await member(client, admin, app)
    assert_problem(await client.get("/v1/applications", headers=partner_key), 403)
    assert_problem(
        await client.post(
            f"/v1/applications/{uuid.uuid4()}/reject", json={"reason": "x"}, headers=partner_key
        ),
        403,
    )


async def test_two_applications_of_one_email_at_once_make_one(client, admin):
    program = await create_program(client, admin)
    body = form()
    url = f"/v1/programs/{program['id']}/applications"
    answers = await asyncio.gather(*(client.post(url, json=body) for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409]
