import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from service.kit.time import utc_now
from service.links.promo_codes import check_promo_code, consume_promo_code
from service.models import PromoCode
from tests.conftest import make_key
from tests.factories import create_partner, create_program, unique
from tests.helpers import assert_problem, error_fields


@pytest.fixture
async def program(client, admin):
    return await create_program(client, admin)


@pytest.fixture
async def partner(client, admin):
    return await create_partner(client, admin)


async def _promo(client, admin, program, partner, **overrides):
    body = {"program_id": program["id"], "partner_id": partner["id"], "code": unique("SAVE")}
    body.update(overrides)
    r = await client.post("/v1/promo-codes", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_get_list_patch(client, admin, program, partner):
    promo = await _promo(client, admin, program, partner, code="Summer10", max_uses=5)
    assert promo["code"] == "Summer10"
    assert promo["uses"] == 0 and promo["max_uses"] == 5 and promo["status"] == "active"

    r = await client.get(f"/v1/promo-codes/{promo['id']}", headers=admin)
    assert r.json() == promo

    r = await client.get(
        "/v1/promo-codes", params={"program_id": program["id"], "code": "SUMMER10"}, headers=admin
    )
    assert [p["id"] for p in r.json()["items"]] == [promo["id"]]

    r = await client.patch(
        f"/v1/promo-codes/{promo['id']}", json={"status": "disabled"}, headers=admin
    )
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    r = await client.get("/v1/promo-codes", params={"status": "disabled"}, headers=admin)
    assert promo["id"] in [p["id"] for p in r.json()["items"]]


async def test_codes_unique_per_program_ignoring_case(client, admin, program, partner):
    await _promo(client, admin, program, partner, code="Welcome")
    for clash in (
        "WELCOME",
        "welcome",
        "\uff37\uff45\uff4c\uff43\uff4f\uff4d\uff45",
    ):  # full-width (NFKC)
        r = await client.post(
            "/v1/promo-codes",
            json={"program_id": program["id"], "partner_id": partner["id"], "code": clash},
            headers=admin,
        )
        assert error_fields(r, 409) == ["code"], clash
    other = await create_program(client, admin)
    await _promo(client, admin, other, partner, code="WELCOME")


async def test_bad_inputs(client, admin, program, partner):
    now = utc_now()
    base = {"program_id": program["id"], "partner_id": partner["id"], "code": unique("C")}
    cases = [
        ({"valid_from": now.isoformat(), "valid_to": now.isoformat()}, "valid_to"),
        ({"max_uses": 0}, "max_uses"),
        ({"code": "two words"}, "code"),
        ({"code": ""}, "code"),
        ({"code": "x" * 65}, "code"),
        ({"partner_id": str(uuid.uuid4())}, "partner_id"),
        ({"program_id": str(uuid.uuid4())}, "program_id"),
        ({"valid_from": "2026-01-01T00:00:00"}, "valid_from"),
        ({"status": "gone"}, "status"),
    ]
    for extra, field in cases:
        r = await client.post("/v1/promo-codes", json={**base, **extra}, headers=admin)
        assert error_fields(r) == [field], (extra, r.text)


async def test_patch_window_checked(client, admin, program, partner):
    now = utc_now()
    promo = await _promo(client, admin, program, partner, valid_from=now.isoformat())
    r = await client.patch(
        f"/v1/promo-codes/{promo['id']}",
        json={"valid_to": (now - timedelta(days=1)).isoformat()},
        headers=admin,
    )
    assert error_fields(r) == ["valid_to"]
    assert_problem(
        await client.get(f"/v1/promo-codes/{uuid.uuid4()}", headers=admin),
        404,
    )


async def test_admin_only(app, client, admin, program, partner):
    key = await make_key(app, "partner", partner_id=partner["id"])
    assert_problem(await client.get("/v1/promo-codes", headers=key), 403)
    r = await client.post(
        "/v1/promo-codes",
        json={"program_id": program["id"], "partner_id": partner["id"], "code": "X1"},
        headers=key,
    )
    assert_problem(r, 403)


async def test_check_and_consume(app, client, admin, program, partner):
    now = utc_now()
    promo = await _promo(
        client,
        admin,
        program,
        partner,
        code="Flash",
        valid_from=(now - timedelta(days=1)).isoformat(),
        valid_to=(now + timedelta(days=1)).isoformat(),
        max_uses=2,
    )
    pid = uuid.UUID(program["id"])
    async with app.state.sessionmaker() as s:
        row, why = await check_promo_code(s, pid, "flash", now)
        assert why is None and row is not None and str(row.id) == promo["id"]
        assert (await check_promo_code(s, pid, "nope", now)) == (None, "promo code unknown")
        assert (await check_promo_code(s, pid, "FLASH", now - timedelta(days=2)))[1] == (
            "promo code not yet valid"
        )
        assert (await check_promo_code(s, pid, "FLASH", now + timedelta(days=2)))[1] == (
            "promo code expired"
        )
        assert await consume_promo_code(s, row.id)
        # The code as checked is a detached copy: the count is the database's.
        assert row.uses == 0
        assert await s.scalar(select(PromoCode.uses).where(PromoCode.id == row.id)) == 1
        assert await consume_promo_code(s, row.id)
        assert not await consume_promo_code(s, row.id)
        assert (await check_promo_code(s, pid, "flash", now))[1] == "promo code used up"
        await s.commit()

    r = await client.get(f"/v1/promo-codes/{promo['id']}", headers=admin)
    assert r.json()["uses"] == 2
    r = await client.patch(f"/v1/promo-codes/{promo['id']}", json={"max_uses": 1}, headers=admin)
    assert error_fields(r) == ["max_uses"]
    await client.patch(f"/v1/promo-codes/{promo['id']}", json={"status": "disabled"}, headers=admin)
    async with app.state.sessionmaker() as s:
        assert (await check_promo_code(s, pid, "flash", now))[1] == "promo code disabled"


async def test_consume_is_atomic_under_concurrency(app, client, admin, program, partner):
    promo = await _promo(client, admin, program, partner, max_uses=3)

    async def one() -> bool:
        async with app.state.sessionmaker() as s:
            ok = await consume_promo_code(s, uuid.UUID(promo["id"]))
            await s.commit()
            return ok

    results = await asyncio.gather(*(one() for _ in range(10)))
    assert sum(results) == 3
    r = await client.get(f"/v1/promo-codes/{promo['id']}", headers=admin)
    assert r.json()["uses"] == 3


async def test_external_ids_round_trip(client, admin, program, partner):
    promo = await _promo(client, admin, program, partner)
    assert promo["external_ids"] == []
    promo = await _promo(
        client, admin, program, partner, external_ids=[" promo_1MiM6KLkdIwHu7ix ", "promo_2"]
    )
    assert promo["external_ids"] == ["promo_1MiM6KLkdIwHu7ix", "promo_2"]
    r = await client.get(f"/v1/promo-codes/{promo['id']}", headers=admin)
    assert r.json()["external_ids"] == ["promo_1MiM6KLkdIwHu7ix", "promo_2"]

    url = f"/v1/promo-codes/{promo['id']}"
    r = await client.patch(url, json={"external_ids": ["promo_3"]}, headers=admin)
    assert r.status_code == 200 and r.json()["external_ids"] == ["promo_3"]
    # Left out: kept.
    r = await client.patch(url, json={"status": "disabled"}, headers=admin)
    assert r.json()["external_ids"] == ["promo_3"]
    assert error_fields(await client.patch(url, json={"external_ids": None}, headers=admin)) == [
        "external_ids"
    ]
    r = await client.patch(url, json={"external_ids": []}, headers=admin)
    assert r.status_code == 200 and r.json()["external_ids"] == []


async def test_external_ids_validated(client, admin, program, partner):
    base = {"program_id": program["id"], "partner_id": partner["id"], "code": unique("C")}
    for ids in (
        [""],
        ["   "],
        ["x" * 256],
        ["promo_\x00"],
        ["promo\n1"],
        ["promo_1", "promo_1"],
        [f"promo_{i}" for i in range(21)],
    ):
        r = await client.post("/v1/promo-codes", json={**base, "external_ids": ids}, headers=admin)
        # A NUL is refused before the service reads the body, naming the item.
        assert [f.split("[")[0] for f in error_fields(r)] == ["external_ids"], (ids, r.text)
    promo = await _promo(client, admin, program, partner, external_ids=["x" * 255])
    r = await client.patch(
        f"/v1/promo-codes/{promo['id']}",
        json={"external_ids": [f"promo_{i}" for i in range(21)]},
        headers=admin,
    )
    assert error_fields(r) == ["external_ids"]
    assert (await client.get(f"/v1/promo-codes/{promo['id']}", headers=admin)).json()[
        "external_ids"
    ] == ["x" * 255]


async def test_external_ids_unique_per_program(client, admin, program, partner):
    first = await _promo(client, admin, program, partner, external_ids=["promo_a", "promo_b"])
    base = {"program_id": program["id"], "partner_id": partner["id"]}
    r = await client.post(
        "/v1/promo-codes",
        json={**base, "code": unique("C"), "external_ids": ["promo_c", "promo_b"]},
        headers=admin,
    )
    assert error_fields(r, 409) == ["external_ids"]
    second = await _promo(client, admin, program, partner, external_ids=["promo_c"])
    r = await client.patch(
        f"/v1/promo-codes/{second['id']}", json={"external_ids": ["promo_a"]}, headers=admin
    )
    assert error_fields(r, 409) == ["external_ids"]
    # A code may keep (and reorder) its own ids.
    r = await client.patch(
        f"/v1/promo-codes/{first['id']}",
        json={"external_ids": ["promo_b", "promo_a", "promo_d"]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    # Another program may hold the same id.
    other = await create_program(client, admin)
    await _promo(client, admin, other, partner, external_ids=["promo_a"])
