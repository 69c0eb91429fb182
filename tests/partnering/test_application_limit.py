"""The public application form is limited per client address: 429 with Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import Started, serving, settings_for_tests
from tests.factories import create_program, unique
from tests.helpers import assert_problem


@pytest.fixture(scope="module")
async def served(database_url: str) -> AsyncIterator[Started]:
    async with serving(settings_for_tests(application_limit="3/minute"), database_url) as s:
        yield s


async def test_fourth_application_from_one_address_is_429(client, admin):
    program = await create_program(client, admin)
    url = f"/v1/programs/{program['id']}/applications"
    for _ in range(3):
        body = {"name": "A", "email": f"{unique('a')}@example.org"}
        assert (await client.post(url, json=body)).status_code == 201
    r = await client.post(url, json={"name": "A", "email": f"{unique('a')}@example.org"})
    body = assert_problem(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
    assert "address" in body["detail"]
    # Keyed calls are not held back by it.
    assert (await client.get("/v1/programs", headers=admin)).status_code == 200
