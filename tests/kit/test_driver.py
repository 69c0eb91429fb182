"""Prepared statements on the session's own asyncpg connection: in its transaction, typed as
SQLAlchemy would bind them, errors as asyncpg's."""

import asyncio
import gc
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import sqlalchemy.exc
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    event,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.util import await_only

from service.db import create_engine, create_sessionmaker
from service.kit.dberrors import database_unavailable
from service.kit.driver import Prepared, among, connection
from service.models import (
    Conversion,
)

_meta = MetaData()
_probe = Table(
    "driver_probe",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("doc", JSONB(none_as_null=True)),
    Column("raw_doc", JSONB),
    Column("label", Text, nullable=False),
    Column("at", DateTime(timezone=True)),
)
_INSERT = Prepared(
    insert(_probe)
    .values(
        id=bindparam("id", type_=Integer),
        doc=bindparam("doc", type_=JSONB(none_as_null=True)),
        raw_doc=bindparam("raw_doc", type_=JSONB),
        label=bindparam("label", type_=Text),
        at=bindparam("at", type_=DateTime(timezone=True)),
    )
    .returning(_probe.c.id, _probe.c.doc)
)
_DEFAULTED = Prepared(insert(_probe).values(id=bindparam("id", type_=Integer), label="default"))
_READ = Prepared(select(_probe.c.doc, _probe.c.raw_doc).where(_probe.c.id == bindparam("id")))
# Its labels are unique at COMMIT, not at each statement: a commit that fails.
_deferred = Table(
    "driver_deferred",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("label", Text, nullable=False),
    UniqueConstraint("label", name="driver_deferred_label", deferrable=True, initially="DEFERRED"),
)
_LABEL = Prepared(
    insert(_deferred).values(
        id=bindparam("id", type_=Integer), label=bindparam("label", type_=Text)
    )
)


@pytest.fixture(scope="module")
async def probe(app):
    async with app.state.engine.begin() as conn:
        await conn.run_sync(_meta.create_all)
    yield
    async with app.state.engine.begin() as conn:
        await conn.run_sync(_meta.drop_all)


async def _count(app, id_: int) -> int:
    async with app.state.sessionmaker() as session:
        return int(await session.scalar(select(_probe.c.id).where(_probe.c.id == id_)) is not None)


async def _terminate(database_url: str, pid: int) -> None:
    """The server ends that backend, as a restart or an operator would."""
    killer = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await killer.close()


@asynccontextmanager
async def _pool_of_one(app, database_url: str) -> AsyncIterator[Any]:
    """Sessions of an engine of its own with one pooled connection."""
    one = app.state.settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    engine = create_engine(database_url, one)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_a_first_statement_runs_inside_the_session_transaction(app, probe):
    async with app.state.sessionmaker() as session:
        row = await _INSERT.fetchrow(
            session,
            {"id": 1, "doc": {"a": [1]}, "raw_doc": None, "label": "x", "at": datetime.now(UTC)},
        )
        assert row is not None and row["doc"] == {"a": [1]}
        # The ORM's statements see it: one transaction, one connection.
        assert await session.scalar(select(_probe.c.label).where(_probe.c.id == 1)) == "x"
        await session.rollback()
    assert await _count(app, 1) == 0

    async with app.state.sessionmaker() as session:
        await session.execute(select(1))
        await _INSERT.fetch(
            session, {"id": 2, "doc": None, "raw_doc": None, "label": "y", "at": None}
        )
        await session.commit()
    assert await _count(app, 2) == 1


async def test_statements_after_a_commit_or_rollback_run_in_the_next_transaction(app, probe):
    # The connection a transaction began on is kept for its next statements; the session's
    # next transaction must not reuse it as if it were still open.
    async with app.state.sessionmaker() as session:
        await _INSERT.fetch(
            session, {"id": 50, "doc": None, "raw_doc": None, "label": "a", "at": None}
        )
        await session.commit()
        await _INSERT.fetch(
            session, {"id": 51, "doc": None, "raw_doc": None, "label": "b", "at": None}
        )
        await session.rollback()
        await _INSERT.fetch(
            session, {"id": 52, "doc": None, "raw_doc": None, "label": "c", "at": None}
        )
        driver = await connection(session)
        assert driver.is_in_transaction()
        await session.rollback()
        assert not driver.is_in_transaction()
    assert [await _count(app, i) for i in (50, 51, 52)] == [1, 0, 0]


async def test_json_is_bound_as_sqlalchemy_binds_it(app, probe):
    async with app.state.sessionmaker() as session:
        await _INSERT.fetch(
            session, {"id": 3, "doc": None, "raw_doc": None, "label": "z", "at": None}
        )
        row = await _READ.fetchrow(session, {"id": 3})
        assert row is not None
        # none_as_null: SQL NULL; a plain JSONB column given None stores JSON null.
        kinds = await session.execute(
            select(_probe.c.doc.is_(None), _probe.c.raw_doc.is_(None)).where(_probe.c.id == 3)
        )
        assert tuple(kinds.one()) == (True, False)
        await session.rollback()


async def test_values_bound_in_the_statement_are_used_when_not_given(app, probe):
    async with app.state.sessionmaker() as session:
        await _DEFAULTED.fetch(session, {"id": 4})
        assert await session.scalar(select(_probe.c.label).where(_probe.c.id == 4)) == "default"
        await session.rollback()


async def test_errors_are_sqlalchemy_errors_and_the_session_rolls_back(app, probe):
    async with app.state.sessionmaker() as session:
        await _INSERT.fetch(
            session, {"id": 5, "doc": None, "raw_doc": None, "label": "a", "at": None}
        )
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            await _INSERT.fetch(
                session, {"id": 5, "doc": None, "raw_doc": None, "label": "b", "at": None}
            )
        await session.rollback()
    assert await _count(app, 5) == 0
    # The connection went back to the pool usable.
    async with app.state.sessionmaker() as session:
        driver = await connection(session)
        assert await driver.fetchval("SELECT 1") == 1
        assert isinstance(await driver.fetchval("SELECT $1::uuid", uuid.UUID(int=1)), uuid.UUID)


async def test_a_session_that_ran_statements_is_freed_without_the_collector(app, probe):
    # A cycle through the session's info would leave every request's session, transaction
    # and connection objects for the collector, whose passes over them pause the process.
    gc.collect()
    gc.disable()
    try:
        for end in ("commit", "rollback"):
            session = app.state.sessionmaker()
            await _READ.fetch(session, {"id": 1})
            await _READ.fetch(session, {"id": 2})  # the transaction as held, found again
            await getattr(session, end)()
            await session.close()
            freed = weakref.ref(session.sync_session)
            del session
            assert freed() is None, end
    finally:
        gc.enable()


async def test_a_session_after_its_commit_never_borrows_the_connection_it_gave_back(
    app, probe, database_url
):
    # One pooled connection: after A commits, B takes it and begins. A's next statement must
    # wait for a connection of its own, not run in B's transaction on the one A held before.
    async with _pool_of_one(app, database_url) as maker:
        a, b = maker(), maker()
        await _READ.fetch(a, {"id": 1})
        await a.commit()
        gc.collect()  # A's finished transaction is gone, as it soon is without the collector
        driver_b = await connection(b)
        assert await driver_b.fetchval("SELECT 1") == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(connection(a), 0.5)
        await b.rollback()
        await a.close()
        await b.close()


async def test_a_connection_the_server_cut_is_invalidated_and_never_handed_out_again(
    app, probe, database_url
):
    async with app.state.sessionmaker() as session:
        driver = await connection(session)
        pid = await driver.fetchval("SELECT pg_backend_pid()")
        await _terminate(database_url, pid)
        with pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
            await _READ.fetch(session, {"id": 1})
        assert raised.value.connection_invalidated
        assert database_unavailable(raised.value)
        await session.rollback()
    # Every pooled connection that comes out next is a live one, and not the cut one.
    async with app.state.sessionmaker() as session:
        driver = await connection(session)
        assert await driver.fetchval("SELECT pg_backend_pid()") != pid
        assert await _READ.fetch(session, {"id": 1}) == []


def test_among_is_an_equality_for_one_value_and_an_in_for_more():
    one, two = uuid.uuid4(), uuid.uuid4()
    assert str(among(Conversion.id, [one])) == str(Conversion.id == one)
    assert str(among(Conversion.id, [one, two])) == str(Conversion.id.in_([one, two]))


def _in_use(app) -> int:
    return int(app.state.engine.sync_engine.pool.checkedout())


def _listened(session, *names: str) -> list[str]:
    """The session's transaction events, in order, as they are dispatched."""
    heard: list[str] = []
    for name in names:
        event.listen(session.sync_session, name, lambda *_, name=name: heard.append(name))
    return heard


def _row(id_: int, label: str = "x") -> dict[str, Any]:
    return {"id": id_, "doc": None, "raw_doc": None, "label": label, "at": None}


async def test_a_transaction_of_prepared_statements_commits_between_the_listeners(
    app, probe, database_url
):
    # Nothing of the ORM's ran: the session commits the connection it holds itself, with
    # the listeners SQLAlchemy's commit runs on each side of the COMMIT.
    other = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    seen: list[tuple[str, bool]] = []

    def stored(name: str) -> None:
        found = await_only(other.fetchval("SELECT count(*) FROM driver_probe WHERE id = 90"))
        seen.append((name, found == 1))

    try:
        before = _in_use(app)
        session = app.state.sessionmaker()
        await _INSERT.fetch(session, _row(90))
        assert not session.in_transaction()  # none of SQLAlchemy's
        assert _in_use(app) == before + 1
        event.listen(session.sync_session, "before_commit", lambda _: stored("before"))
        event.listen(session.sync_session, "after_commit", lambda _: stored("after"))
        await session.commit()
        assert seen == [("before", False), ("after", True)]
        assert _in_use(app) == before  # given back at the commit, not at the close
        # The next statement begins the next transaction, on a connection checked out again.
        await _INSERT.fetch(session, _row(91))
        assert _in_use(app) == before + 1
        await session.close()
        assert _in_use(app) == before
        assert [await _count(app, i) for i in (90, 91)] == [1, 0]
    finally:
        await other.close()


async def test_a_rollback_of_prepared_statements_tells_the_listeners_once(app, probe):
    before = _in_use(app)
    async with app.state.sessionmaker() as session:
        heard = _listened(session, "after_rollback", "after_commit")
        await _INSERT.fetch(session, _row(92))
        await session.rollback()
        assert heard == ["after_rollback"]
        assert _in_use(app) == before
        await session.rollback()  # nothing begun: nothing to tell
        assert heard == ["after_rollback"]
    assert await _count(app, 92) == 0


async def test_the_orm_after_prepared_statements_joins_their_transaction(app, probe):
    # The ORM's first statement adopts the held connection, then commits it as its own.
    before = _in_use(app)
    async with app.state.sessionmaker() as session:
        heard = _listened(session, "before_commit", "after_commit")
        await _INSERT.fetch(session, _row(93))
        await session.execute(insert(_probe).values(id=94, label="orm"))
        assert await _READ.fetchrow(session, {"id": 94}) is not None
        assert _in_use(app) == before + 1
        await session.commit()
        assert heard == ["before_commit", "after_commit"]
        assert _in_use(app) == before
    assert [await _count(app, i) for i in (93, 94)] == [1, 1]


async def test_a_before_commit_listener_using_the_orm_commits_in_the_same_transaction(app, probe):
    # As the outbox writes the events a transaction emitted: popped, so written once.
    before = _in_use(app)
    async with app.state.sessionmaker() as session:
        session.info["pending"] = [{"id": 96, "label": "event"}]

        def write_pending(sync: Any) -> None:
            pending = sync.info.pop("pending", None)
            if pending:
                sync.execute(insert(_probe), pending)

        event.listen(session.sync_session, "before_commit", write_pending)
        await _INSERT.fetch(session, _row(95))
        await session.commit()
        assert not session.in_transaction()  # committed as a whole, nothing left open
        assert _in_use(app) == before
    assert [await _count(app, i) for i in (95, 96)] == [1, 1]


async def test_begin_and_begin_nested_after_prepared_statements_run_in_their_transaction(
    app, probe
):
    async with app.state.sessionmaker() as session:
        await _INSERT.fetch(session, _row(97))
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await _INSERT.fetch(session, _row(98))
                raise RuntimeError("to the savepoint")
        await session.commit()
    assert [await _count(app, i) for i in (97, 98)] == [1, 0]

    async with app.state.sessionmaker() as session:
        await _INSERT.fetch(session, _row(99))
        async with session.begin():
            await session.execute(insert(_probe).values(id=100, label="orm"))
    # A block that runs nothing commits what ran before it, as for any session.
    async with app.state.sessionmaker() as session:
        await _INSERT.fetch(session, _row(102))
        async with session.begin():
            pass
    assert [await _count(app, i) for i in (99, 100, 102)] == [1, 1, 1]


async def test_a_commit_that_fails_is_a_sqlalchemy_error_and_stores_nothing(app, probe):
    async with app.state.engine.begin() as conn:
        await conn.run_sync(_deferred.create, checkfirst=True)
    try:
        before = _in_use(app)
        async with app.state.sessionmaker() as session:
            heard = _listened(session, "after_commit", "after_rollback")
            await _LABEL.fetch(session, {"id": 1, "label": "twice"})
            await _LABEL.fetch(session, {"id": 2, "label": "twice"})  # checked at COMMIT
            with pytest.raises(sqlalchemy.exc.IntegrityError):
                await session.commit()
            assert heard == ["after_rollback"]
            assert _in_use(app) == before
            # The session goes on, in a new transaction on a good connection.
            await _LABEL.fetch(session, {"id": 3, "label": "once"})
            await session.commit()
        async with app.state.sessionmaker() as session:
            ids = (await session.scalars(select(_deferred.c.id).order_by(_deferred.c.id))).all()
        assert ids == [3]
    finally:
        async with app.state.engine.begin() as conn:
            await conn.run_sync(_deferred.drop, checkfirst=True)


async def test_a_connection_cut_before_the_commit_fails_it_as_unavailable(app, probe, database_url):
    session = app.state.sessionmaker()
    try:
        await _INSERT.fetch(session, _row(101))
        pid = await (await connection(session)).fetchval("SELECT pg_backend_pid()")
        await _terminate(database_url, pid)
        await asyncio.sleep(0.05)  # the server's goodbye reaches the client
        with pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
            await session.commit()
        assert database_unavailable(raised.value)
    finally:
        await session.close()
    assert await _count(app, 101) == 0
    async with app.state.sessionmaker() as session:
        driver = await connection(session)
        assert await driver.fetchval("SELECT pg_backend_pid()") != pid


async def test_a_pooled_connection_the_server_closed_while_idle_is_replaced_at_checkout(
    app, probe, database_url
):
    # The session checks its connection out itself: the pool's check of a closed one
    # (service.db._refuse_closed) must still run, so the request never sees the dead one.
    async with _pool_of_one(app, database_url) as maker:
        async with maker() as session:
            pid = await (await connection(session)).fetchval("SELECT pg_backend_pid()")
            await session.commit()
        await _terminate(database_url, pid)
        await asyncio.sleep(0.05)  # the server's goodbye reaches the idle connection
        async with maker() as session:
            assert await _READ.fetch(session, {"id": 1}) == []
            assert await (await connection(session)).fetchval("SELECT pg_backend_pid()") != pid
            await session.commit()
