"""HMAC-SHA256 under one fixed key, for the hashes taken on every click."""

from __future__ import annotations

import hashlib

_BLOCK = 64  # SHA-256's block size, in bytes
_INNER = bytes(b ^ 0x36 for b in range(256))
_OUTER = bytes(b ^ 0x5C for b in range(256))


class HmacSha256:
    """hmac.digest(key, message, "sha256"), with the key set up once.

    hmac.digest sets the key up again on every call, which is most of its cost for the
    short messages of a click (a click id, an address, a user agent). Here the two keyed
    SHA-256 states of RFC 2104 (the key padded to a block, XORed with ipad and with opad,
    each hashed) are prepared once, and each digest copies them: all in hashlib's C code,
    where a copy of a prepared `hmac.HMAC` goes through its Python wrapper (2.8 against
    1.7 us a digest, measured).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\x00")
        self._inner = hashlib.sha256(key.translate(_INNER))
        self._outer = hashlib.sha256(key.translate(_OUTER))

    def digest(self, message: bytes) -> bytes:
        """The HMAC of `message` (32 bytes)."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()
