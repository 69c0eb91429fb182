import asyncio

from tests.factories import create_partner, create_program
from tests.helpers import assert_problem


async def _walk(client, path, headers, limit):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        r = await client.get(path, params=params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


async def test_no_item_lost_or_repeated(client, admin):
    created = await asyncio.gather(*(create_partner(client, admin) for _ in range(13)))
    seen, pages = await _walk(client, "/v1/partners", admin, 4)
    assert len(seen) == len(set(seen))
    assert {p["id"] for p in created} <= set(seen)
    assert pages >= 4
    programs = [await create_program(client, admin) for _ in range(5)]
    seen, _ = await _walk(client, "/v1/programs", admin, 2)
    assert len(seen) == len(set(seen)) and {p["id"] for p in programs} <= set(seen)


async def test_items_created_while_paging_are_not_skipped(client, admin):
    await create_partner(client, admin)
    first = (await client.get("/v1/partners", params={"limit": 1}, headers=admin)).json()
    late = await create_partner(client, admin)
    seen, _ = await _walk(client, "/v1/partners", admin, 50)
    assert late["id"] in seen and first["items"][0]["id"] in seen


async def test_bad_cursor_and_limit(client, admin):
    r = await client.get("/v1/partners", params={"cursor": "!!"}, headers=admin)
    assert assert_problem(r, 422)["errors"][0]["field"] == "cursor"
    r = await client.get("/v1/partners", params={"limit": 0}, headers=admin)
    assert assert_problem(r, 422)["errors"][0]["field"] == "limit"
    r = await client.get("/v1/partners", params={"limit": 201}, headers=admin)
    assert_problem(r, 422)
