import pytest

from tests.conftest import make_key
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v1/programs"),
        ("POST", "/v1/programs"),
        ("GET", "/v1/partners"),
        ("POST", "/v1/partners"),
        ("GET", "/v1/api-keys"),
    ],
)
async def test_no_key_is_401(client, method, path):
    r = await client.request(method, path, json={})
    body = assert_problem(r, 401)
    assert "Bearer" in r.headers["www-authenticate"]
    assert "Authorization" in body["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer aff_000000000000_notarealkeyatall",
        "Bearer garbage",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
async def test_bad_key_is_401(client, header):
    r = await client.get("/v1/programs", headers={"Authorization": header})
    assert_problem(r, 401)


async def test_wrong_role_is_403(client, app, admin):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    for headers in (
        await make_key(app, "finance"),
        await make_key(app, "merchant", program_ids=[program["id"]]),
        await make_key(app, "partner", partner_id=partner["id"]),
    ):
        for method, path in (
            ("GET", "/v1/programs"),
            ("POST", "/v1/partners"),
            ("PATCH", f"/v1/programs/{program['id']}"),
            ("GET", "/v1/api-keys"),
        ):
            r = await client.request(method, path, headers=headers, json={})
            body = assert_problem(r, 403)
            assert "admin" in body["detail"]


async def test_revoked_key_is_401(client, app, admin):
    headers = await make_key(app, "admin")
    assert (await client.get("/v1/programs", headers=headers)).status_code == 200
    listed = (await client.get("/v1/api-keys", headers=admin)).json()
    prefix = headers["Authorization"].split("_")[1]
    key_id = next(k["id"] for k in listed if k["prefix"] == prefix)
    r = await client.post(f"/v1/api-keys/{key_id}/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert_problem(await client.get("/v1/programs", headers=headers), 401)


async def test_api_key_create_binds_and_hides_hash(client, admin):
    partner = await create_partner(client, admin)
    r = await client.post(
        "/v1/api-keys", json={"role": "partner", "partner_id": partner["id"]}, headers=admin
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["key"].startswith("aff_") and body["partner_id"] == partner["id"]
    assert "key_hash" not in body
    listed = (await client.get("/v1/api-keys", headers=admin)).json()
    assert all("key" not in k for k in listed)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"role": "partner"}, "partner_id"),
        ({"role": "merchant"}, "program_ids"),
        ({"role": "admin", "program_ids": ["8f8c2c55-6a1c-4a8e-9a8d-4d2f6f0b7f1e"]}, "program_ids"),
        ({"role": "owner"}, "role"),
    ],
)
async def test_api_key_create_validation(client, admin, body, field):
    r = await client.post("/v1/api-keys", json=body, headers=admin)
    problem = assert_problem(r, 422)
    assert field in [e["field"] for e in problem["errors"]]
