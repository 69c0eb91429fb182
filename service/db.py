"""Engine, sessions, and the embedded PostgreSQL used when no DATABASE_URL is set."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import anyio
import orjson
from fastapi import Depends, Request
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session as SyncSession

from service.config import Settings
from service.kit.driver import DriverSession

log = logging.getLogger(__name__)


def to_async_url(url: str) -> str:
    """Normalise any postgres URL to the asyncpg driver."""
    for prefix in (
        "postgresql+asyncpg://",
        "postgresql+psycopg://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


# pgserver's list of the processes using a data directory: the last one to leave stops the
# server. A process killed with -9 never leaves, so its pid would keep the server running
# forever after every clean stop.
HANDLES_FILE = ".handle_pids.json"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that died without leaving from pgserver's handle list.

    The postmaster they left behind is then adopted by the next start (pgserver finds it by
    postmaster.pid) and stopped by its clean stop.
    """
    from pgserver.postgres_server import PostgresServer

    path = pgdata / HANDLES_FILE
    with PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(pids, list):
            return
        alive = [p for p in pids if isinstance(p, int) and (p == os.getpid() or _alive(p))]
        if alive != pids:
            log.warning(
                "embedded PostgreSQL: forgetting dead processes %s", sorted(set(pids) - set(alive))
            )
            path.write_text(json.dumps(alive))


class EmbeddedPostgres:
    """A pgserver instance in the data directory, started on demand, stopped on exit."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the embedded server; return its asyncpg URL."""
        import pgserver  # imported late: only the embedded mode needs it

        pgdata = self.data_dir / "pgdata"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(pgdata)
        self._server = pgserver.get_server(pgdata, cleanup_mode="stop")
        self._server.psql("SELECT 1;")
        log.info("embedded PostgreSQL running in %s", pgdata)
        return f"postgresql+asyncpg://postgres@/postgres?host={quote(str(pgdata))}"

    def stop(self) -> None:
        """Stop the server if this process started it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def resolve_database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The URL to use, and the embedded server backing it when there is one."""
    if settings.database_url:
        return to_async_url(settings.database_url), None
    embedded = EmbeddedPostgres(settings.data_dir)
    return embedded.start(), embedded


def json_text(value: Any) -> str:
    """A JSON column's value as the text sent to the database: orjson's, about a tenth of
    json.dumps' CPU (a sale writes ten JSON values); json.dumps' where orjson refuses (an
    integer past 64 bits, a key that is not a string), so that what was stored before
    still is. Non-finite floats never get here: the API refuses them (kit.jsondoc)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value)


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    """An asyncpg engine with the configured pool."""
    engine = create_async_engine(
        url,
        json_serializer=json_text,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        connect_args={"server_settings": {"timezone": "UTC", "application_name": "affiliate-api"}},
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # A pooled connection the server has closed (restart, pg_terminate_backend, an idle
    # timeout in a proxy) is replaced at checkout instead of failing the request that
    # drew it. The server's goodbye and the socket's end have reached asyncpg by then, so
    # a local look is enough; SQLAlchemy's pre-ping asks the server instead, three round
    # trips (BEGIN, a statement, ROLLBACK) on every checkout. A connection that dies
    # unannounced fails its statement, which is answered 503 (service.kit.dberrors).
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


def create_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep their objects usable after commit; `info` is copied into each."""
    return async_sessionmaker(
        engine,
        expire_on_commit=False,
        autoflush=False,
        info=info or {},
        # Statements built once run on a connection it holds, without the ORM's (kit.driver).
        sync_session_class=DriverSession,
    )


def _commit_and_close(session: SyncSession) -> None:
    try:
        session.commit()
    finally:
        session.close()


async def _end(session: AsyncSession, failed: BaseException | None) -> None:
    # Committed and closed in one pass through SQLAlchemy's synchronous layer, where
    # `commit()` then `async with`'s close took two, and a task of its own for the close;
    # rolled back and closed when the request failed.
    if failed is not None:
        async with session:
            await session.rollback()
        return
    await session.run_sync(_commit_and_close)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed on success, rolled back on error; closed either way."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    session = maker()
    try:
        yield session
    except BaseException as exc:
        await _end(session, exc)
        raise
    # FastAPI runs this part shielded from cancellation.
    await _end(session, None)


class _RequestSession:
    """What request_session returns: an async context manager of its own, where two made of
    generators (contextlib's, around get_session's) cost about 3 us a request more."""

    __slots__ = ("_request", "_session")

    def __init__(self, request: Request) -> None:
        self._request = request
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> AsyncSession:
        maker: async_sessionmaker[AsyncSession] = self._request.app.state.sessionmaker
        self._session = maker()
        return self._session

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        session = self._session
        assert session is not None
        with anyio.CancelScope(shield=True):
            await _end(session, exc)
        return False


def request_session(request: Request) -> _RequestSession:
    """get_session outside FastAPI's dependencies (service.kit.leanroute): the same
    commit, rollback and close, its exit shielded from cancellation as FastAPI runs it."""
    return _RequestSession(request)


# scope="function": the commit happens before the response is sent, so a client that
# got a 201 can read what it wrote, from any instance.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
