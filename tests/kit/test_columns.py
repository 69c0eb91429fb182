"""A model's columns, and the objects built from rows without the ORM's per-row work, in the
state the ORM's own functions leave them in."""

import uuid
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.orm import make_transient_to_detached

from service.kit.columns import Columns
from service.models import (
    Agreement,
    AgreementVersion,
    CommissionEntry,
    Conversion,
    Link,
    Partner,
    Program,
)


def test_new_holds_the_values_as_the_constructor_would_without_pending_changes():
    entries = Columns(CommissionEntry)
    built = entries.new(kind="commission", amount_minor=1250, currency="USD")
    made = CommissionEntry(kind="commission", amount_minor=1250, currency="USD")
    for key in ("kind", "amount_minor", "currency", "refund_id"):
        assert getattr(built, key) == getattr(made, key)
    state = inspect(built)
    assert state.transient and not state.modified
    # A later change is tracked as on any instance.
    built.kind = "override"
    assert state.modified and built.kind == "override"
    with pytest.raises(TypeError, match="amount"):
        entries.new(amount="12.50")


def _loaded_the_old_way(columns: Columns[Any], row: list[Any]) -> Any:
    instance = columns._manager.new_instance()
    instance.__dict__.update(zip(columns._keys, row, strict=True))
    make_transient_to_detached(instance)
    return instance


def _states_alike(fast: Any, slow: Any) -> None:
    a, b = inspect(fast), inspect(slow)
    assert a.key == b.key and a.key is not None
    assert a.identity_key == b.identity_key
    assert a.detached and b.detached
    for name in ("committed_state", "expired_attributes", "callables", "modified", "expired"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.unloaded == b.unloaded
    assert {k: v for k, v in vars(fast).items() if k != "_sa_instance_state"} == {
        k: v for k, v in vars(slow).items() if k != "_sa_instance_state"
    }


@pytest.mark.parametrize(
    "model", [Link, Partner, Agreement, AgreementVersion, CommissionEntry, Conversion, Program]
)
def test_detached_leaves_the_state_make_transient_to_detached_leaves(model):
    columns = Columns(model)
    # Every column a distinct value, the key's columns included (composite keys too).
    row = [uuid.uuid4() for _ in range(len(columns))]
    fast = columns.detached([None, *row], start=1)
    slow = _loaded_the_old_way(columns, row)
    _states_alike(fast, slow)


def test_detached_refuses_a_row_too_short():
    with pytest.raises(ValueError, match="columns of Link"):
        Columns(Link).detached([uuid.uuid4()])


@pytest.mark.parametrize("through_attributes", [(), ("status", "counted", "partner_id")])
def test_written_leaves_the_state_make_transient_to_detached_leaves(through_attributes):
    columns = Columns(Conversion)
    values = {key: uuid.uuid4() for key in columns._keys}
    made = []
    for _ in range(2):
        instance = columns.new(**{k: v for k, v in values.items() if k not in through_attributes})
        later = {k: values[k] for k in through_attributes}
        for key, value in later.items():
            # As the ledger sets what a conversion earns: a change event each.
            setattr(instance, key, value)
        assert inspect(instance).modified == bool(through_attributes)
        made.append(instance)
    fast, slow = made
    assert columns.written(fast) is fast
    make_transient_to_detached(slow)
    _states_alike(fast, slow)


def test_fill_sets_values_without_change_events_and_refuses_other_names():
    columns = Columns(Conversion)
    instance = columns.new(status="accepted")
    columns.fill(instance, status="review", partner_id=None)
    assert instance.status == "review" and instance.partner_id is None
    assert not inspect(instance).modified
    with pytest.raises(TypeError, match="not columns of Conversion"):
        columns.fill(instance, colour="red")
    # A stored one (keyed, as loaded) takes them through its attributes, for its session.
    stored = columns.written(columns.new(**{key: uuid.uuid4() for key in columns._keys}))
    columns.fill(stored, status="accepted")
    assert stored.status == "accepted" and inspect(stored).modified


def test_written_refuses_an_object_missing_a_column_or_already_keyed():
    columns = Columns(Conversion)
    with pytest.raises(ValueError, match="no value for"):
        columns.written(columns.new(status="accepted"))
    full = columns.new(**{key: uuid.uuid4() for key in columns._keys})
    columns.written(full)
    with pytest.raises(ValueError, match="a new Conversion expected"):
        columns.written(full)


@pytest.mark.parametrize("model", [CommissionEntry, Conversion])
def test_values_are_what_the_attributes_read_loaded_or_not(model):
    columns = Columns(model)
    full = columns.detached([uuid.uuid4() for _ in range(len(columns))])
    held = columns.values(full)
    assert held is vars(full)  # every column loaded: its state's own dict, nothing copied
    assert {k: held[k] for k in columns._keys} == {k: getattr(full, k) for k in columns._keys}
    # One never set: read through the attributes (None for it, as getattr reads).
    first, *rest = columns._keys
    partial = columns.new(**{key: uuid.uuid4() for key in rest})
    read = columns.values(partial)
    assert read is not vars(partial)
    assert read == {k: getattr(partial, k) for k in columns._keys}
    assert read[first] is None
