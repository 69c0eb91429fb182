from datetime import UTC, datetime, timedelta

import pytest

from service.agreements.service import in_force
from tests.conftest import make_key
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem, error_fields

TERMS = {
    "rules": [
        {"event": "sale", "type": "percent", "percent": "10"},
        {"event": "lead", "type": "flat", "amount": "3.00"},
    ],
    "hold_days": 14,
}


def iso(dt: datetime) -> str:
    return dt.isoformat()


async def _agreement(client, admin, **overrides):
    program = overrides.pop("program", None) or await create_program(client, admin)
    partner = overrides.pop("partner", None) or await create_partner(client, admin)
    body = {"program_id": program["id"], "terms": TERMS, **overrides}
    r = await client.post(f"/v1/partners/{partner['id']}/agreements", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return program, partner, r.json()


async def test_create_and_get_with_versions(client, admin):
    _, partner, agreement = await _agreement(client, admin)
    assert agreement["status"] == "active" and agreement["current_version"] == 1
    assert agreement["versions"][0]["terms"]["rules"][0]["percent"] == "10"
    got = await client.get(f"/v1/agreements/{agreement['id']}", headers=admin)
    assert got.json()["id"] == agreement["id"]
    listed = await client.get("/v1/agreements", params={"partner_id": partner["id"]}, headers=admin)
    assert [a["id"] for a in listed.json()["items"]] == [agreement["id"]]


async def test_one_agreement_per_partner_and_program(client, admin):
    program, partner, agreement = await _agreement(client, admin)
    r = await client.post(
        f"/v1/partners/{partner['id']}/agreements",
        json={"program_id": program["id"], "terms": TERMS},
        headers=admin,
    )
    assert assert_problem(r, 409)["agreement_id"] == agreement["id"]
    # After termination, a new agreement may start once the old one has ended.
    end = datetime.now(UTC) + timedelta(days=2)
    t = await client.post(
        f"/v1/agreements/{agreement['id']}/terminate", json={"at": iso(end)}, headers=admin
    )
    assert t.status_code == 200
    early = await client.post(
        f"/v1/partners/{partner['id']}/agreements",
        json={
            "program_id": program["id"],
            "terms": TERMS,
            "effective_from": iso(end - timedelta(hours=1)),
        },
        headers=admin,
    )
    assert_problem(early, 409)
    later = await client.post(
        f"/v1/partners/{partner['id']}/agreements",
        json={"program_id": program["id"], "terms": TERMS, "effective_from": iso(end)},
        headers=admin,
    )
    assert later.status_code == 201 and later.json()["status"] == "scheduled"


async def test_versions_in_force_at_a_time(client, app, admin):
    start = datetime.now(UTC) - timedelta(days=10)
    program, partner, agreement = await _agreement(client, admin, effective_from=iso(start))
    v2_at = datetime.now(UTC) + timedelta(days=3)
    new_terms = {"rules": [{"event": "sale", "type": "percent", "percent": "12.5"}]}
    r = await client.post(
        f"/v1/agreements/{agreement['id']}/versions",
        json={"effective_from": iso(v2_at), "terms": new_terms},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert [v["version"] for v in body["versions"]] == [1, 2]
    assert body["current_version"] == 1
    async with app.state.sessionmaker() as session:
        pid, prg = partner["id"], program["id"]
        before = await in_force(session, pid, prg, start - timedelta(seconds=1), "USD")
        v1 = await in_force(session, pid, prg, v2_at - timedelta(microseconds=1), "USD")
        v2 = await in_force(session, pid, prg, v2_at, "USD")
    assert before is None
    assert v1 is not None and v1.version.version == 1
    assert v2 is not None and v2.version.version == 2
    assert str(v2.terms.rules[0].percent) == "12.5"


async def test_versions_never_rewrite_the_past(client, admin):
    _, _, agreement = await _agreement(client, admin)
    past = datetime.now(UTC) - timedelta(hours=1)
    r = await client.post(
        f"/v1/agreements/{agreement['id']}/versions",
        json={"effective_from": iso(past), "terms": TERMS},
        headers=admin,
    )
    assert error_fields(r) == ["effective_from"]
    future = datetime.now(UTC) + timedelta(days=5)
    ok = await client.post(
        f"/v1/agreements/{agreement['id']}/versions",
        json={"effective_from": iso(future), "terms": TERMS},
        headers=admin,
    )
    assert ok.status_code == 201
    earlier = await client.post(
        f"/v1/agreements/{agreement['id']}/versions",
        json={"effective_from": iso(future - timedelta(days=1)), "terms": TERMS},
        headers=admin,
    )
    assert error_fields(earlier) == ["effective_from"]


async def test_termination_ends_earning(client, app, admin):
    program, partner, agreement = await _agreement(
        client, admin, effective_from=iso(datetime.now(UTC) - timedelta(days=1))
    )
    end = datetime.now(UTC) + timedelta(hours=1)
    r = await client.post(
        f"/v1/agreements/{agreement['id']}/terminate",
        json={"at": iso(end), "reason": "program closed"},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["termination_reason"] == "program closed"
    async with app.state.sessionmaker() as session:
        assert await in_force(
            session, partner["id"], program["id"], end - timedelta(seconds=1), "USD"
        )
        assert await in_force(session, partner["id"], program["id"], end, "USD") is None
    now = await client.post(f"/v1/agreements/{agreement['id']}/terminate", json={}, headers=admin)
    assert now.status_code == 200 and now.json()["status"] == "terminated"
    again = await client.post(f"/v1/agreements/{agreement['id']}/terminate", json={}, headers=admin)
    assert_problem(again, 409)
    late = await client.post(
        f"/v1/agreements/{agreement['id']}/versions", json={"terms": TERMS}, headers=admin
    )
    assert_problem(late, 409)
    past = await client.post(
        f"/v1/agreements/{agreement['id']}/terminate",
        json={"at": iso(datetime.now(UTC) - timedelta(days=3))},
        headers=admin,
    )
    assert error_fields(past) == ["at"]


@pytest.mark.parametrize(
    "terms,field",
    [
        (
            {"rules": [{"event": "sale", "type": "percent", "percent": "101"}]},
            "terms.rules[0].percent",
        ),
        (
            {"rules": [{"event": "sale", "type": "percent", "percent": "-1"}]},
            "terms.rules[0].percent",
        ),
        (
            {"rules": [{"event": "sale", "type": "percent", "percent": 10}]},
            "terms.rules[0].percent",
        ),
        (
            {"rules": [{"event": "lead", "type": "flat", "amount": "3.001"}]},
            "terms.rules[0].amount",
        ),
        (
            {"rules": [{"event": "lead", "type": "flat", "amount": "3", "percent": "5"}]},
            "terms.rules[0].percent",
        ),
        (
            {"rules": [{"event": "sale", "type": "percent", "percent": "5", "bonus": "1"}]},
            "terms.rules[0].bonus",
        ),
        (
            {
                "rules": [
                    {
                        "event": "sale",
                        "type": "percent",
                        "tiers": [{"from": "100", "percent": "5"}],
                    }
                ]
            },
            "terms.rules[0].tiers[0].from",
        ),
        (
            {
                "rules": [
                    {
                        "event": "sale",
                        "type": "percent",
                        "tiers": [{"from": "0", "percent": "5"}, {"from": "0", "percent": "6"}],
                    }
                ]
            },
            "terms.rules[0].tiers[1].from",
        ),
        ({"rules": []}, "terms.rules"),
        (
            {
                "rules": [{"event": "sale", "type": "percent", "percent": "5"}],
                "min_payout": "1.234",
            },
            "terms.min_payout",
        ),
    ],
)
async def test_terms_are_validated_with_the_field_named(client, admin, terms, field):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    r = await client.post(
        f"/v1/partners/{partner['id']}/agreements",
        json={"program_id": program["id"], "terms": terms},
        headers=admin,
    )
    assert field in error_fields(r), r.text


async def test_currency_decides_the_allowed_decimals(client, admin):
    program = await create_program(client, admin, currency="JPY", min_payout="0")
    partner = await create_partner(client, admin)
    r = await client.post(
        f"/v1/partners/{partner['id']}/agreements",
        json={
            "program_id": program["id"],
            "terms": {"rules": [{"event": "lead", "type": "flat", "amount": "3.5"}]},
        },
        headers=admin,
    )
    assert error_fields(r) == ["terms.rules[0].amount"]


async def test_unknown_partner_program_and_terminated_partner(client, admin):
    program = await create_program(client, admin)
    r = await client.post(
        "/v1/partners/0190f4d6-0000-7000-8000-000000000000/agreements",
        json={"program_id": program["id"], "terms": TERMS},
        headers=admin,
    )
    assert_problem(r, 404)
    partner = await create_partner(client, admin)
    r = await client.post(
        f"/v1/partners/{partner['id']}/agreements",
        json={"program_id": "0190f4d6-0000-7000-8000-000000000000", "terms": TERMS},
        headers=admin,
    )
    assert error_fields(r) == ["program_id"]
    await client.patch(
        f"/v1/partners/{partner['id']}", json={"status": "terminated"}, headers=admin
    )
    r = await client.post(
        f"/v1/partners/{partner['id']}/agreements",
        json={"program_id": program["id"], "terms": TERMS},
        headers=admin,
    )
    assert_problem(r, 409)


async def test_partner_keys_read_only_their_own(client, app, admin):
    _, partner, agreement = await _agreement(client, admin)
    _, _, other = await _agreement(client, admin)
    key = await make_key(app, "partner", partner_id=partner["id"])
    assert (await client.get(f"/v1/agreements/{agreement['id']}", headers=key)).status_code == 200
    assert_problem(await client.get(f"/v1/agreements/{other['id']}", headers=key), 404)
    listed = (await client.get("/v1/agreements", headers=key)).json()["items"]
    assert [a["id"] for a in listed] == [agreement["id"]]
    r = await client.post(f"/v1/agreements/{agreement['id']}/terminate", json={}, headers=key)
    assert_problem(r, 403)


async def test_naive_effective_from_is_refused(client, admin):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    r = await client.post(
        f"/v1/partners/{partner['id']}/agreements",
        json={"program_id": program["id"], "terms": TERMS, "effective_from": "2026-11-22T10:00:00"},
        headers=admin,
    )
    assert error_fields(r) == ["effective_from"]
