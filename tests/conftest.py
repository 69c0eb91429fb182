"""A real PostgreSQL per run (embedded, or a fresh database on TEST_DATABASE_URL), migrated once."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from service import migrate
from service.app import Served, create_asgi
from service.config import Settings
from service.db import EmbeddedPostgres, to_async_url


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class TestServer:
    """One PostgreSQL server for the run; hands out fresh databases."""

    def __init__(self) -> None:
        self._tmp: str | None = None
        self._embedded: EmbeddedPostgres | None = None
        given = os.environ.get("TEST_DATABASE_URL")
        if given:
            self.admin_url = to_async_url(given)
        else:
            self._tmp = tempfile.mkdtemp(prefix="affiliate-test-")
            self._embedded = EmbeddedPostgres(Path(self._tmp))
            self.admin_url = self._embedded.start()
        self.created: list[str] = []

    async def new_database(self) -> str:
        name = f"affiliate_test_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(_plain(self.admin_url))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return _with_database(self.admin_url, name)

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(_plain(self.admin_url))
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TestServer]:
    server = TestServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def database_url(pg_server: TestServer) -> AsyncIterator[str]:
    url = await pg_server.new_database()
    import asyncio

    await asyncio.to_thread(migrate.upgrade, url)
    yield url
    await pg_server.drop_all()


def settings_for_tests(**overrides: object) -> Settings:
    """Settings for tests: no embedded server of the app's own, no migrations at start."""
    # Every test client calls from one address; the failure limit has tests of its own.
    values: dict[str, object] = {
        "migrate": False,
        "public_url": "http://aff.test",
        "auth_failure_limit": "10000/minute",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def asgi(database_url: str) -> AsyncIterator[Served]:
    """What uvicorn would serve (body limit, redirect, FastAPI), its lifespan running."""
    served = create_asgi(settings_for_tests(), database_url=database_url)
    async with served.fastapi.router.lifespan_context(served.fastapi):
        yield served


@pytest.fixture(scope="session")
def app(asgi: Served) -> FastAPI:
    """The FastAPI app behind `asgi`, for its state."""
    return asgi.fastapi


@pytest.fixture(scope="session")
async def client(asgi: Served) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://aff.test") as c:
        yield c


async def make_key(
    app: FastAPI,
    role: str,
    *,
    program_ids: list[uuid.UUID] | None = None,
    partner_id: uuid.UUID | None = None,
) -> dict[str, str]:
    """Authorization headers for a new key of the role."""
    from service.auth.keys import create_key
    from service.models import Role

    async with app.state.sessionmaker() as session:
        _, key = await create_key(
            session, Role(role), program_ids=program_ids or [], partner_id=partner_id
        )
        await session.commit()
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
async def admin(app: FastAPI) -> dict[str, str]:
    return await make_key(app, "admin")


@pytest.fixture(scope="session")
async def finance(app: FastAPI) -> dict[str, str]:
    return await make_key(app, "finance")
