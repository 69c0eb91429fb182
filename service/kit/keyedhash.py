"""HMAC-SHA256 under one fixed key, for the hashes taken on every click."""

from __future__ import annotations

import hashlib
import hmac


class HmacSha256:
    """hmac.digest(key, message, "sha256"), with the key set up once.

    hmac.digest sets the key up again on every call, which is most of its cost for the
    short messages of a click (a click id, an address, a user agent): here each digest
    copies the prepared HMAC instead.
    """

    __slots__ = ("_prepared",)

    def __init__(self, key: bytes) -> None:
        self._prepared = hmac.new(key, digestmod=hashlib.sha256)

    def digest(self, message: bytes) -> bytes:
        """The HMAC of `message` (32 bytes)."""
        mac = self._prepared.copy()
        mac.update(message)
        return mac.digest()
