"""Requests counted by route template and status on /metrics, and timed by route."""

import re

import httpx


async def _sample(client: httpx.AsyncClient, name: str, labels: str) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(rf"^{name}{{{re.escape(labels)}}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_each_request_is_counted_under_its_route_and_status(client):
    ok = 'method="GET",route="/healthz",status="200"'
    timed = 'method="GET",route="/healthz"'
    missing = 'method="GET",route="unmatched",status="404"'
    before = await _sample(client, "affiliate_http_requests_total", ok)
    timed_before = await _sample(client, "affiliate_http_request_seconds_count", timed)
    missing_before = await _sample(client, "affiliate_http_requests_total", missing)
    for _ in range(3):
        assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/no/such/path")).status_code == 404
    assert await _sample(client, "affiliate_http_requests_total", ok) == before + 3
    assert await _sample(client, "affiliate_http_request_seconds_count", timed) == timed_before + 3
    assert await _sample(client, "affiliate_http_requests_total", missing) == missing_before + 1
