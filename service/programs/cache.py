"""Programs by id, cached per instance for the conversion path.

Every conversion reads its program's settings (currency, time zone, attribution and fraud
rules, hold days), and programs change seldom. A change clears the program from this
instance's cache once it commits (an ORM change seen at flush), and from every instance's
through the NOTIFY that the database sends for each update of a program (the same channel
as the link and key caches). Programs are cached only while that notification can arrive
(the listener is connected), and for CACHE_SECONDS at most, which bounds what a lost
notification can cost. A read that overlaps a clear is not kept (`generation`).

The cached rows are detached copies that belong to no session: read-only to their users.
"""

from __future__ import annotations

import time
import typing
import uuid
from dataclasses import dataclass

from sqlalchemy import Table, bindparam, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, make_transient_to_detached

from service.models import Program

CACHE_SECONDS = 5.0
CACHE_MAX = 1_000
SESSION_PROGRAMS = "program_cache"
_CHANGED = "programs_changed"


@dataclass(frozen=True, slots=True)
class _Cached:
    expires: float
    program: Program


class ProgramCache:
    """Program id -> a detached copy of its row."""

    def __init__(self, seconds: float = CACHE_SECONDS, max_size: int = CACHE_MAX) -> None:
        self._seconds = seconds
        self._max_size = max_size
        self._entries: dict[uuid.UUID, _Cached] = {}
        self.generation = 0
        self.listening = False

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, program_id: uuid.UUID, now: float) -> Program | None:
        """The live copy of a program, or None."""
        hit = self._entries.get(program_id)
        if hit is None or hit.expires <= now:
            return None
        return hit.program

    def put(self, program: Program, now: float, generation: int) -> None:
        """Keep a copy read while `generation` was current (and the listener connected)."""
        if generation != self.generation or not self.listening:
            return
        if len(self._entries) >= self._max_size:
            self._entries.clear()
        self._entries[program.id] = _Cached(now + self._seconds, program)

    def forget(self, program_id: uuid.UUID) -> None:
        """Drop one program."""
        self.generation += 1
        self._entries.pop(program_id, None)

    def clear(self) -> None:
        """Drop everything."""
        self.generation += 1
        self._entries.clear()

    def on_notify(self, payload: str) -> None:
        """Apply one notification of the `affiliate_cache` channel (only `program:` is ours)."""
        kind, _, key = payload.partition(":")
        if kind != "program":
            return
        try:
            self.forget(uuid.UUID(key))
        except ValueError:
            self.clear()

    def on_listening(self, listening: bool) -> None:
        """The listener (re)connected or dropped: what was cached meanwhile may be stale."""
        self.listening = listening
        self.clear()


_programs = typing.cast(Table, Program.__table__)
_COLUMNS = tuple(
    (attribute.key, attribute.columns[0]) for attribute in Program.__mapper__.column_attrs
)
_SELECT = select(*(column for _, column in _COLUMNS)).where(
    _programs.c.id == bindparam("program_id", type_=_programs.c.id.type)
)


async def _read(session: AsyncSession, program_id: uuid.UUID) -> Program | None:
    row = (await session.execute(_SELECT, {"program_id": program_id})).first()
    if row is None:
        return None
    program = Program(**{key: value for (key, _), value in zip(_COLUMNS, row, strict=True)})
    # Loaded as a row of the database, owned by no session.
    make_transient_to_detached(program)
    return program


async def cached_program(session: AsyncSession, program_id: uuid.UUID) -> Program | None:
    """The program of this id, from this instance's cache when it holds it; a copy to read,
    never to change (sessions without a cache read it as any query would)."""
    cache: ProgramCache | None = session.info.get(SESSION_PROGRAMS)
    if cache is None:
        return await session.get(Program, program_id)
    now = time.monotonic()
    program = cache.get(program_id, now)
    if program is not None:
        return program
    generation = cache.generation
    program = await _read(session, program_id)
    if program is not None:
        cache.put(program, now, generation)
    return program


@event.listens_for(Session, "after_flush")
def _note_changed(session: Session, _flush_context: object) -> None:
    changed = [p.id for p in (*session.dirty, *session.deleted) if isinstance(p, Program)]
    if changed:
        session.info.setdefault(_CHANGED, set()).update(changed)


@event.listens_for(Session, "after_commit")
def _forget_committed(session: Session) -> None:
    changed = session.info.pop(_CHANGED, None)
    cache: ProgramCache | None = session.info.get(SESSION_PROGRAMS)
    if cache is None or not changed:
        return
    for program_id in changed:
        cache.forget(program_id)


@event.listens_for(Session, "after_rollback")
def _forget_nothing(session: Session) -> None:
    session.info.pop(_CHANGED, None)
