from tests.helpers import assert_problem


async def test_unknown_route_is_problem_404(client):
    body = assert_problem(await client.get("/v1/nothing-here"), 404)
    assert body["type"].startswith("/problems/")


async def test_unknown_object_is_problem_404(client, admin):
    r = await client.get("/v1/programs/0190f4d6-0000-7000-8000-000000000000", headers=admin)
    assert "does not exist" in assert_problem(r, 404)["detail"]


async def test_bad_path_id_is_422_naming_it(client, admin):
    body = assert_problem(await client.get("/v1/partners/not-a-uuid", headers=admin), 422)
    assert body["errors"][0]["field"] == "partner_id"


async def test_method_not_allowed_is_problem_405(client, admin):
    assert_problem(await client.delete("/v1/programs", headers=admin), 405)


async def test_malformed_json_is_422(client, admin):
    r = await client.post(
        "/v1/programs",
        content=b"{not json",
        headers={**admin, "content-type": "application/json"},
    )
    body = assert_problem(r, 422)
    assert body["errors"]


async def test_wrong_types_name_each_field(client, admin):
    r = await client.post(
        "/v1/programs",
        json={"name": 5, "currency": "USD", "default_url": "https://x.example", "hold_days": "x"},
        headers=admin,
    )
    fields = {e["field"] for e in assert_problem(r, 422)["errors"]}
    assert {"name", "hold_days"} <= fields


async def test_unknown_field_is_refused(client, admin):
    r = await client.post(
        "/v1/partners", json={"name": "a", "email": "a@b.example", "colour": "red"}, headers=admin
    )
    assert "colour" in {e["field"] for e in assert_problem(r, 422)["errors"]}


async def test_huge_and_odd_inputs_never_5xx(client, admin):
    for body in (
        {"name": "x" * 10_000, "currency": "USD", "default_url": "https://a.example"},
        {"name": "n", "currency": "usd", "default_url": "https://a.example"},
        {"name": "n", "currency": "USD", "default_url": "https://a.example", "min_payout": "1e400"},
        {"name": "n", "currency": "USD", "default_url": "https://a.example", "min_payout": "NaN"},
        {"name": "n", "currency": "USD", "default_url": "https://a.example", "min_payout": 1.5},
        {"name": "n", "currency": "USD", "default_url": "https://a.example", "hold_days": 10**30},
        [],
        "string",
        None,
    ):
        r = await client.post("/v1/programs", json=body, headers=admin)
        assert 400 <= r.status_code < 500, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
