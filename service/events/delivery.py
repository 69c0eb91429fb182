"""One delivery attempt over HTTP: the address guard, then the request to the checked address."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from service.events import addresses

TIMEOUT_SECONDS = 10.0
USER_AGENT = "affiliate-service-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    ok: bool
    response_status: int | None
    seconds: float
    error: str | None


def client() -> httpx.AsyncClient:
    """The HTTP client of deliveries: 10 s in all, redirects never followed."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT_SECONDS),
        follow_redirects=False,
        # The environment's proxy would connect by name, past the address guard.
        trust_env=False,
    )


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: dict[str, str],
    allow_private: bool,
) -> Outcome:
    """Check the target now and send to the address checked; 2xx is success."""
    start = time.perf_counter()
    try:
        target = await addresses.check(url, allow_private=allow_private)
    except addresses.TargetRefused as exc:
        return Outcome(False, None, time.perf_counter() - start, f"refused: {exc}")
    sent = {**headers, "host": target.host_header, "user-agent": USER_AGENT}
    if body is not None:
        sent["content-type"] = "application/json"
    extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
    try:
        async with http.stream(
            method, target.url, content=body, headers=sent, extensions=extensions
        ) as response:
            status = response.status_code
    except httpx.TimeoutException:
        return Outcome(False, None, time.perf_counter() - start, "timed out after 10 s")
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        return Outcome(False, None, time.perf_counter() - start, f"request failed: {reason}")
    seconds = time.perf_counter() - start
    if 200 <= status < 300:
        return Outcome(True, status, seconds, None)
    if 300 <= status < 400:
        return Outcome(False, status, seconds, f"HTTP {status}: redirects are not followed")
    return Outcome(False, status, seconds, f"HTTP {status}")
