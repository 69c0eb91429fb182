"""A limit on failed authentications per client address, kept in each process's memory."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class AuthFailureLimiter:
    """Counts failed authentications per address in a moving window (`limits`).

    Per process: N instances allow N times the limit, which still ends guessing at scale
    without a shared store on the request path. Only failures count, so a working key is
    never held back by what others at its address got wrong.
    """

    def __init__(self, limit: str) -> None:
        self._item = parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def fail(self, address: str) -> float | None:
        """Count one failure; None while under the limit, else the seconds to wait."""
        if self._limiter.hit(self._item, "auth", address):
            return None
        reset_at, _ = self._limiter.get_window_stats(self._item, "auth", address)
        return max(1.0, math.ceil(reset_at - time.time()))


class AddressLimiter:
    """Requests per client address in a moving window (`limits`), for endpoints that take no
    key (applications). Per process, as AuthFailureLimiter is."""

    def __init__(self, limit: str, namespace: str) -> None:
        self._item = parse(limit)
        self._namespace = namespace
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, address: str) -> float | None:
        """Count one request; None while under the limit, else the seconds to wait."""
        if self._limiter.hit(self._item, self._namespace, address):
            return None
        reset_at, _ = self._limiter.get_window_stats(self._item, self._namespace, address)
        return max(1.0, math.ceil(reset_at - time.time()))
