import copy
import pickle
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.kit.ids import new_id, uuid7_from


def test_uuid7_from_lays_out_time_version_variant_and_random_bits() -> None:
    rand = (0xABC << 62) | 0x1234_5678_9ABC_DEF
    made = uuid7_from(0x0123_4567_89AB, rand)
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert made.int >> 80 == 0x0123_4567_89AB
    assert (made.int >> 64) & 0xFFF == 0xABC
    assert made.int & ((1 << 62) - 1) == 0x1234_5678_9ABC_DEF


def test_new_id_is_a_uuid7_of_now() -> None:
    first, second = new_id(), new_id()
    assert first.version == second.version == 7
    assert first != second
    assert second.int >> 80 >= first.int >> 80


@given(ms=st.integers(0, (1 << 48) - 1), rand=st.integers(0, (1 << 74) - 1))
def test_uuid7_from_makes_the_uuid_that_uuid_makes_of_its_value(ms: int, rand: int) -> None:
    made = uuid7_from(ms, rand)
    same = uuid.UUID(int=made.int)
    # Equal, hashed, ordered, written and pickled as uuid.UUID's own.
    assert type(made) is uuid.UUID
    assert made == same and hash(made) == hash(same) and not made < same
    assert str(made) == str(same) and made.bytes == same.bytes and repr(made) == repr(same)
    assert made.is_safe == same.is_safe == uuid.SafeUUID.unknown
    assert pickle.loads(pickle.dumps(made)) == same
    assert copy.deepcopy(made) == same
    with pytest.raises(TypeError):
        made.int = 0  # type: ignore[misc]
