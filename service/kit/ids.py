"""Time-ordered UUIDs (version 7 layout), so that ids sort by creation."""

from __future__ import annotations

import os
import time
import uuid

_RAND_A_MASK = (1 << 12) - 1
_RAND_B_MASK = (1 << 62) - 1


def new_id() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, version, variant, 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand & _RAND_A_MASK) << 64
    value |= 0b10 << 62
    value |= (rand >> 12) & _RAND_B_MASK
    return uuid.UUID(int=value)


def parse_id(text: str) -> uuid.UUID | None:
    """A UUID from its text, or None when the text is not one."""
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
