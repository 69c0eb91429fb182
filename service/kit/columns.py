"""A model's columns in order, and the objects the ORM would make of its rows, without the
ORM's per-row work: for the statements built once (service.kit.driver), whose rows come back
as asyncpg records, and the rows the same code inserts itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, inspect

M = TypeVar("M")


class Columns(Generic[M]):
    """A model's mapped columns in order: to select them, and to build from a row the
    object the ORM would have loaded, detached (it belongs to no session; read it, do not
    change it)."""

    __slots__ = ("_identity", "_key_set", "_keys", "_manager", "_model", "_primary", "columns")

    def __init__(self, model: type[M]) -> None:
        self._model = model
        mapper = inspect(model)
        attributes = mapper.column_attrs
        self._keys = tuple(attribute.key for attribute in attributes)
        self._key_set = frozenset(self._keys)
        self._manager = mapper.class_manager
        self.columns: tuple[Column[Any], ...] = tuple(
            attribute.columns[0] for attribute in attributes
        )
        # What an identity key is made of: the class it is kept under, and the primary
        # key's values, read from the row by their place among the columns.
        self._identity = mapper._identity_class
        self._primary = tuple(self.columns.index(column) for column in mapper.primary_key)

    def __len__(self) -> int:
        return len(self._keys)

    def new(self, **values: Any) -> M:
        """A new transient object holding `values`, as the model's constructor makes it,
        but without the instrumentation's change event for each value (a few
        microseconds each): for rows this code inserts itself, with their statement, and
        then holds as written (make_transient_to_detached, or never in a session)."""
        unknown = values.keys() - self._key_set
        if unknown:
            raise TypeError(f"not columns of {self._model.__name__}: {sorted(unknown)}")
        instance: M = self._manager.new_instance()
        instance.__dict__.update(values)
        return instance

    def fill(self, instance: M, **values: Any) -> None:
        """Set `values` on an instance. One in no session and not stored (made by `new`,
        written by a statement of its own) takes them as `new` does, without the change
        events (a few microseconds each); any other through its attributes, whose events
        its session flushes."""
        unknown = values.keys() - self._key_set
        if unknown:
            raise TypeError(f"not columns of {self._model.__name__}: {sorted(unknown)}")
        state = instance.__dict__["_sa_instance_state"]
        if state.key is None and state.session_id is None:
            instance.__dict__.update(values)
            return
        for name, value in values.items():
            setattr(instance, name, value)

    def values(self, instance: M) -> Mapping[str, Any]:
        """The instance's column values by attribute name, to read (never to change): its
        own state's dict when every column is loaded, as it is for the rows built here and
        the ORM's loads, else a dict read through the attributes, which load what is
        missing. A read through an attribute costs about half a microsecond; a response
        body reads some 25 of them per row."""
        held = instance.__dict__
        if self._key_set <= held.keys():
            return held
        return {key: getattr(instance, key) for key in self._keys}

    def written(self, instance: M) -> M:
        """`instance`, made by `new` and holding a value for every column, as the row this
        code wrote from it: detached, in the state make_transient_to_detached leaves it in
        (the tests compare the two), without that function's generic walk over the state.
        Values set through the attributes since (a change event each) are taken as loaded."""
        held = instance.__dict__
        state = held["_sa_instance_state"]
        if state.key is not None or state.session_id is not None:
            raise ValueError(f"a new {self._model.__name__} expected, not a stored one")
        missing = self._key_set.difference(held)
        if missing:
            raise ValueError(f"no value for {sorted(missing)} of {self._model.__name__}")
        if state.modified:
            # Their history goes, as make_transient_to_detached's _commit_all drops it.
            state._commit_all(held)
        state.key = (self._identity, tuple([held[self._keys[i]] for i in self._primary]), None)
        return instance

    def detached(self, row: Sequence[Any], start: int = 0) -> M:
        """The object of the row's columns from `start` (as many as the model has), in the
        state make_transient_to_detached leaves it in (the tests compare the two).

        For an object just made with every column loaded, that function's work comes down
        to its identity key: nothing was changed, expired or left unloaded (the models
        have no relationships). Setting the key directly saves its generic walk over the
        state, four objects a sale."""
        values = row[start : start + len(self._keys)]
        if len(values) != len(self._keys):
            raise ValueError(f"{len(self._keys)} columns of {self._model.__name__} expected")
        instance: M = self._manager.new_instance()
        held = instance.__dict__
        held.update(zip(self._keys, values, strict=False))  # lengths checked above
        held["_sa_instance_state"].key = (
            self._identity,
            tuple([values[i] for i in self._primary]),
            None,
        )
        return instance
