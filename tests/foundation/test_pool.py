"""The API's connection pool under a load larger than it: connections are reused, never
opened and closed per request."""

import asyncio
from typing import Any

from sqlalchemy import event

from tests.factories import create_program


async def test_a_load_past_the_pool_opens_no_connection_once_warm(app, client, admin):
    program = await create_program(client, admin)
    pool = app.state.engine.sync_engine.pool
    opened: list[Any] = []

    def count(dbapi_connection: Any, record: Any) -> None:
        opened.append(record)

    async def burst() -> None:
        answers = await asyncio.gather(
            *(client.get(f"/v1/programs/{program['id']}", headers=admin) for _ in range(40))
        )
        assert {r.status_code for r in answers} == {200}

    await burst()  # warm: the pool fills
    event.listen(pool, "connect", count)
    try:
        for _ in range(3):
            await burst()
    finally:
        event.remove(pool, "connect", count)
    assert pool.size() == app.state.settings.db_pool_size
    assert opened == []
