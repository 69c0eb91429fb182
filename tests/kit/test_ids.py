import uuid

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
