"""A real PostgreSQL per run (embedded, or TEST_DATABASE_URL's server), migrated once into a
template; every test module gets a database of its own, copied from it, and its own app.

Module, not test: the app opens its own pools and commits, so a transaction per test cannot
hold what it writes; a copied database plus a started app costs a fraction of a second, which
is cheap per module and too dear per test. A test that needs a database nobody else touches
asks for `fresh_database_url`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp

from service import migrate
from service.app import create_asgi
from service.config import Settings
from service.db import EmbeddedPostgres, to_async_url

pytest_plugins = ["pytester"]

# Generous: the machines running the suite are shared, and an app start opens several pools.
LIFESPAN_TIMEOUT = 60.0


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    """The database a URL names."""
    return urlsplit(url).path.lstrip("/")


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

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(_plain(self.admin_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def new_database(self, template: str | None = None) -> str:
        """A new database: empty, or a copy of the template database's URL."""
        name = f"affiliate_test_{secrets.token_hex(6)}"
        copy = f' TEMPLATE "{database_name(template)}"' if template else ""
        await self._admin(f'CREATE DATABASE "{name}"{copy}')
        self.created.append(name)
        return _with_database(self.admin_url, name)

    async def drop(self, url: str) -> None:
        """Drop a database made here, cutting off whoever is still connected."""
        name = database_name(url)
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.remove(name)

    async def drop_all(self) -> None:
        for name in list(self.created):
            await self.drop(_with_database(self.admin_url, name))

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


@pytest.fixture(scope="session")
async def pg_server() -> AsyncIterator[TestServer]:
    server = TestServer()
    yield server
    await server.drop_all()
    server.stop()


@pytest.fixture(scope="session")
async def template_url(pg_server: TestServer) -> str:
    """The database migrated once for the run; no app ever connects to it (a template with
    connections cannot be copied)."""
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url)
    return url


@pytest.fixture(scope="module")
async def database_url(pg_server: TestServer, template_url: str) -> AsyncIterator[str]:
    """The module's own migrated database: what other modules write never shows here."""
    url = await pg_server.new_database(template=template_url)
    yield url
    await pg_server.drop(url)


@pytest.fixture
async def fresh_database_url(pg_server: TestServer, template_url: str) -> AsyncIterator[str]:
    """A migrated database for this one test."""
    url = await pg_server.new_database(template=template_url)
    yield url
    await pg_server.drop(url)


def settings_for_tests(**overrides: object) -> Settings:
    """Settings for tests: no embedded server of the app's own, no migrations at start."""
    # Every test client calls from one address; the failure limit has tests of its own.
    values: dict[str, object] = {
        "migrate": False,
        "public_url": "http://aff.test",
        "auth_failure_limit": "10000/minute",
        # The background worker only where a test starts it (tests/events).
        "worker": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Started:
    """A started app: the FastAPI object (its state) and the ASGI stack uvicorn would serve."""

    app: FastAPI
    asgi: ASGIApp

    def client(self, **transport: object) -> httpx.AsyncClient:
        """A client through the whole stack (body limit and redirect included)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.asgi, **transport),  # type: ignore[arg-type]
            base_url="http://aff.test",
        )


@asynccontextmanager
async def serving(settings: Settings, database_url: str) -> AsyncIterator[Started]:
    """The app on the database, its lifespan (redirect runtime, listener, writer) started
    through the served stack and stopped on exit."""
    asgi = create_asgi(settings, database_url=database_url)
    async with LifespanManager(
        asgi, startup_timeout=LIFESPAN_TIMEOUT, shutdown_timeout=LIFESPAN_TIMEOUT
    ):
        yield Started(asgi.fastapi, asgi)


@pytest.fixture(scope="module")
async def served(database_url: str) -> AsyncIterator[Started]:
    async with serving(settings_for_tests(), database_url) as s:
        yield s


@pytest.fixture(scope="module")
def app(served: Started) -> FastAPI:
    return served.app


@pytest.fixture(scope="module")
async def client(served: Started) -> AsyncIterator[httpx.AsyncClient]:
    async with served.client() as c:
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


@pytest.fixture(scope="module")
async def admin(app: FastAPI) -> dict[str, str]:
    return await make_key(app, "admin")


@pytest.fixture(scope="module")
async def finance(app: FastAPI) -> dict[str, str]:
    return await make_key(app, "finance")
