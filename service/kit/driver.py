"""Statements built once, run on the session's own asyncpg connection.

Through an AsyncSession a Core statement costs about 100 us of CPU more than the same
statement through asyncpg: its cache key, the parameters' construction, the cursor's
adaptation and the result's wrapping, on every call. The conversion path runs the same
few statements for every sale, so it compiles them once with the session's dialect
(SQLAlchemy still writes the SQL: the casts, the ON CONFLICT, the CTEs) and sends them
on the connection the session holds, inside its transaction, with SQLAlchemy's own bind
processors (JSON is serialized as the ORM would; asyncpg's codecs do the rest).

Rows come back as asyncpg records: JSON columns decoded, UUIDs as `uuid.UUID`
subclasses, timestamps aware. Errors are raised as SQLAlchemy raises its own statements'
(IntegrityError, ...; a connection the server cut is invalidated, and answered 503).
Nothing goes through the ORM: the session knows nothing of what these statements wrote.

The app's sessions are `DriverSession`s: the first of these statements in a transaction checks
out a pool connection and begins on it directly, without SQLAlchemy's Connection and session
transaction, whose making, commit and release cost about 80 us of CPU a request
(bench/sessions.py). A sale runs nothing else, and commits it the same way. The first time
the ORM needs a connection in that transaction, it is given this one, which it then commits
or rolls back as its own.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, NoReturn

import asyncpg
import sqlalchemy.exc
from sqlalchemy import BindParameter, ColumnElement, Table, bindparam
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


def binds(table: Table, names: Iterable[str], prefix: str = "") -> dict[str, BindParameter[Any]]:
    """A parameter for each named column of `table`, typed as the column (so that its bind
    processor runs), named `prefix` + the column's name: for the values of the statements
    built once below."""
    return {name: bindparam(prefix + name, type_=table.c[name].type) for name in names}


def among(column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values`, as `column = value` when there is one value: SQLAlchemy's
    expanding IN parameter leaves a reference cycle for the collector each time its
    statement's cache key is built (about a dozen objects), an equality none."""
    if len(values) == 1:
        (only,) = values
        return column == only  # type: ignore[no-any-return]
    return column.in_(values)  # type: ignore[no-any-return]


class Prepared:
    """One statement, compiled on first use with the dialect of the session that runs it."""

    __slots__ = ("_binds", "_processed", "_sql", "_statement")

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._sql: str | None = None
        # Each positional parameter: its name and the value bound in the statement itself,
        # used when the parameters do not give one; and the positions that have a bind
        # processor, with it.
        self._binds: tuple[tuple[str, Any], ...] = ()
        self._processed: tuple[tuple[int, Callable[[Any], Any]], ...] = ()

    def _compile(self, dialect: Dialect) -> str:
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler) and compiled.positiontup is not None
        processors = compiled._bind_processors
        # A value bound in the statement itself (`.values(state={})`) is the default.
        self._binds = tuple((name, compiled.binds[name].value) for name in compiled.positiontup)
        self._processed = tuple(
            (position, processor)
            for position, name in enumerate(compiled.positiontup)
            if callable(processor := processors.get(name))
        )
        self._sql = compiled.string
        return self._sql

    def _args(self, params: Mapping[str, Any]) -> list[Any]:
        get = params.get
        args = [get(name, default) for name, default in self._binds]
        for position, processor in self._processed:
            args[position] = processor(args[position])
        return args

    async def fetch(self, session: AsyncSession, params: Mapping[str, Any]) -> list[asyncpg.Record]:
        """The statement's rows, run in the session's transaction."""
        on, adapted = await _begun(session)
        sql = self._sql or self._compile(on.dialect)
        args = self._args(params)
        try:
            result: list[asyncpg.Record] = await adapted._connection.fetch(sql, *args)
        except Exception as error:
            await _raise_as_sqlalchemy(on, adapted, error, sql, args)
        return result

    async def fetchrow(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> asyncpg.Record | None:
        """The first row, or None."""
        rows = await self.fetch(session, params)
        return rows[0] if rows else None


def _adapted(conn: AsyncConnection) -> Any:
    # The adapter SQLAlchemy wraps around asyncpg (private; the driver tests check it).
    return conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]


class _Held:
    """A pool connection a DriverSession checked out itself, and what runs statements on it."""

    __slots__ = ("adapted", "connection", "dialect", "engine")

    def __init__(self, engine: Engine, connection: PoolProxiedConnection) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.connection = connection
        self.adapted: Any = connection.dbapi_connection

    def commit(self) -> None:
        """COMMIT the transaction begun on it (inside the greenlet SQLAlchemy's async layer
        runs sync code in), a failure raised as SQLAlchemy raises its own."""
        self._end(self.adapted.commit, "COMMIT")

    def rollback(self) -> None:
        """ROLLBACK the transaction begun on it, as `commit`."""
        self._end(self.adapted.rollback, "ROLLBACK")

    def _end(self, end: Callable[[], None], statement: str) -> None:
        if not self.connection.is_valid:
            raise sqlalchemy.exc.PendingRollbackError(
                "this transaction's connection was lost; roll back before going on"
            )
        if self.adapted._transaction is None:
            return
        try:
            end()
        except Exception as error:
            raised, cut = _as_sqlalchemy(self.dialect, self.adapted, error, statement, [])
            if cut is not None:
                self.connection.invalidate(cut)
            if raised is error:
                raise
            raise raised from error


class DriverSession(Session):
    """A session whose statements built here (`Prepared`) run on a pool connection it checks
    out and begins on itself: see the module's notes. Every way a transaction ends keeps it
    whole:

    - the ORM's first need of a connection (`get_bind`) is given this one, in this transaction;
    - `commit()`, with nothing but these statements run: the before_commit listeners, COMMIT,
      the after_commit listeners, as SQLAlchemy's commit does. A listener that used the ORM
      adopted the connection: SQLAlchemy then commits (running the listeners again; the app's
      are idempotent: the outbox pops what it wrote);
    - `begin()` and `begin_nested()` adopt it at once, so that the transaction SQLAlchemy
      commits is this one;
    - a commit, a rollback and a close give the connection back to the pool.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: _Held | None = None
        # The held connection as the ORM's own, once it needed one.
        self._adopted: Connection | None = None

    def get_bind(self, mapper: Any = None, **kw: Any) -> Engine | Connection:
        held = self._held
        if held is None or kw.get("bind") is not None:
            return super().get_bind(mapper, **kw)
        if self._adopted is None:
            self._adopted = Connection(held.engine, connection=held.connection)
        return self._adopted

    def begin(self, nested: bool = False) -> SessionTransaction:
        transaction = super().begin(nested)
        if self._held is not None:
            self.connection()  # adopted into it: a SAVEPOINT for a nested one
        return transaction

    def commit(self) -> None:
        if self._held is not None and self._adopted is None and not self.in_transaction():
            if self._commit_held():
                return
        try:
            if self._held is not None:
                self.connection()  # adopted, if it was not, into the transaction committed
            super().commit()
        finally:
            self._give_back()

    def _commit_held(self) -> bool:
        # False when a before_commit listener went through the ORM: SQLAlchemy commits then.
        held = self._held
        assert held is not None
        self.dispatch.before_commit(self)
        if self._adopted is not None or self.in_transaction():
            return False
        try:
            held.commit()
        except BaseException:
            self.dispatch.after_rollback(self)
            raise
        finally:
            self._give_back()
        self.dispatch.after_commit(self)
        return True

    def rollback(self) -> None:
        held = self._held
        try:
            if held is not None and self._adopted is None:
                self._rollback_held(held)
        finally:
            try:
                super().rollback()
            finally:
                self._give_back()

    def _rollback_held(self, held: _Held) -> None:
        began = not held.connection.is_valid or held.adapted._transaction is not None
        if held.connection.is_valid:
            held.rollback()
        if began and not self.in_transaction():
            # As SQLAlchemy's rollback of a transaction of its own tells the listeners.
            self.dispatch.after_rollback(self)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()

    def reset(self) -> None:
        try:
            super().reset()
        finally:
            self._give_back()

    def invalidate(self) -> None:
        try:
            super().invalidate()
        finally:
            self._give_back(invalidate=True)

    def _give_back(self, invalidate: bool = False) -> None:
        # The pool rolls back what is still open when it takes a connection back.
        held, adopted = self._held, self._adopted
        self._held = self._adopted = None
        if adopted is not None:
            if invalidate:
                adopted.invalidate()
            adopted.close()
        elif held is not None:
            if invalidate:
                held.connection.invalidate()
            held.connection.close()


def _as_sqlalchemy(
    dialect: Dialect, adapted: Any, error: Exception, sql: str, args: Sequence[Any]
) -> tuple[BaseException, BaseException | None]:
    """A failure as SQLAlchemy raises one of its own statements' (the dialect's translation:
    IntegrityError, ...), and, when it means the server cut the connection, the error to
    invalidate the connection with, so that the pool never hands it out again (the app
    answers 503 for it)."""
    dbapi_error: BaseException = error
    dbapi = dialect.loaded_dbapi
    if not isinstance(error, dbapi.Error):
        try:
            adapted._handle_exception(error)  # raises the driver's error as the DBAPI's
        except Exception as translated:
            dbapi_error = translated
    if not isinstance(dbapi_error, dbapi.Error):
        return error, None  # not the driver's: raised as it is
    disconnect = dialect.is_disconnect(dbapi_error, adapted, None)
    raised = sqlalchemy.exc.DBAPIError.instance(
        sql,
        list(args),
        dbapi_error,
        dbapi.Error,
        connection_invalidated=disconnect,
        dialect=dialect,
    )
    return raised, dbapi_error if disconnect else None


async def _raise_as_sqlalchemy(
    on: AsyncConnection | _Held, adapted: Any, error: Exception, sql: str, args: list[Any]
) -> NoReturn:
    raised, cut = _as_sqlalchemy(on.dialect, adapted, error, sql, args)
    if cut is not None:
        if isinstance(on, _Held):
            on.connection.invalidate(cut)
        else:
            await on.invalidate(cut)
    if raised is error:
        raise error
    raise raised from error


_BEGUN = "service.kit.driver.begun"


async def _begun(session: AsyncSession) -> tuple[AsyncConnection | _Held, Any]:
    """What the session's transaction runs on (its dialect, for the error path) and the
    asyncpg adapter, the transaction's BEGIN sent.

    A DriverSession with no transaction of SQLAlchemy's own runs on a connection it holds;
    any other on its SQLAlchemy connection. SQLAlchemy's asyncpg adapter sends BEGIN lazily,
    with the first statement it runs; a statement sent here first must not run outside the
    transaction, so the adapter is asked to begin it now (the same call its own cursor makes).
    """
    sync = session.sync_session
    if (
        isinstance(sync, DriverSession)
        and sync._adopted is None
        and not sync.in_transaction()
        and isinstance(session.bind, AsyncEngine)
    ):
        held = sync._held
        if held is None:
            engine = session.bind.sync_engine
            try:
                checked_out = await session.bind.raw_connection()
            except engine.dialect.loaded_dbapi.Error as error:
                # As SQLAlchemy raises a failure to connect (OperationalError, ...).
                raise sqlalchemy.exc.DBAPIError.instance(
                    None,
                    None,
                    error,
                    engine.dialect.loaded_dbapi.Error,
                    connection_invalidated=engine.dialect.is_disconnect(error, None, None),
                    dialect=engine.dialect,
                ) from error
            held = sync._held = _Held(engine, checked_out)
        elif not held.connection.is_valid:
            raise sqlalchemy.exc.PendingRollbackError(
                "this transaction's connection was lost; roll back before going on"
            )
        if held.adapted._transaction is None:
            try:
                await held.adapted._start_transaction()
            except Exception as error:
                await _raise_as_sqlalchemy(held, held.adapted, error, "BEGIN", [])
        return held, held.adapted
    transaction = sync.get_transaction()
    found = session.info.get(_BEGUN)
    # A transaction not begun yet (None) matches no reference, a dead one included.
    if found is not None and transaction is not None and found[0]() is transaction:
        conn, adapted = found[1], found[2]
        # Still the transaction this session began, on a connection not cut since.
        sync_conn = conn.sync_connection
        if adapted._transaction is not None and sync_conn is not None and not sync_conn.invalidated:
            return conn, adapted
    conn = await session.connection()
    adapted = _adapted(conn)
    if adapted._transaction is None:
        try:
            await adapted._start_transaction()
        except Exception as error:
            await _raise_as_sqlalchemy(conn, adapted, error, "BEGIN", [])
    # Asked for again by every statement of the transaction: kept until it ends (a commit
    # or rollback gives the session a new transaction, which misses this). The transaction
    # is held weakly: it refers to the session, whose info holds this, and that cycle made
    # every request's session and connection objects (about 40) garbage that only the
    # collector frees, a pause of tens of milliseconds every thousand requests or so.
    session.info[_BEGUN] = (weakref.ref(sync.get_transaction()), conn, adapted)
    return conn, adapted


async def connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection the session's transaction runs on, its BEGIN sent."""
    _, adapted = await _begun(session)
    driver: asyncpg.Connection = adapted._connection
    return driver
