"""Abuse limits: failed authentications per address, and the token on /metrics."""

import secrets

import httpx
import pytest

from service.config import Settings
from tests.conftest import make_key
from tests.helpers import assert_problem

DEFAULT_LIMIT = "20/minute"


@pytest.fixture
def swap_state(app):
    """Replace an app.state attribute for one test (monkeypatch would delete it after)."""
    saved = {}

    def swap(name, value):
        saved.setdefault(name, getattr(app.state, name))
        setattr(app.state, name, value)

    yield swap
    for name, value in saved.items():
        setattr(app.state, name, value)


@pytest.fixture
async def limited(app, swap_state):
    """The app with the default failure limit (the test settings lift it for other tests)."""
    from service.auth.limits import AuthFailureLimiter

    swap_state("auth_failures", AuthFailureLimiter(DEFAULT_LIMIT))
    return app


def _from(app, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://aff.test")


def _wrong_key() -> dict[str, str]:
    return {"Authorization": f"Bearer aff_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"}


async def test_failed_authentications_are_limited_per_address(limited):
    good = await make_key(limited, "admin")
    async with _from(limited, "203.0.113.7") as attacker, _from(limited, "203.0.113.8") as other:
        assert Settings.model_fields["auth_failure_limit"].default == DEFAULT_LIMIT
        for _ in range(20):
            assert_problem(await attacker.get("/v1/programs", headers=_wrong_key()), 401)
        r = await attacker.get("/v1/programs", headers=_wrong_key())
        assert_problem(r, 429)
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # Malformed credentials count as failures too.
        r = await attacker.get("/v1/programs", headers={"Authorization": "Basic eDp5"})
        assert_problem(r, 429)

        # A working key from the same address is never held back by the failures...
        assert (await attacker.get("/v1/programs", headers=good)).status_code == 200
        # ...and other addresses are not limited by this one.
        assert_problem(await other.get("/v1/programs", headers=_wrong_key()), 401)


async def test_metrics_open_without_a_token(client):
    r = await client.get("/metrics")
    assert r.status_code == 200


async def test_metrics_token_protects_metrics(app, client, swap_state):
    token = secrets.token_urlsafe(16)
    swap_state("settings", app.state.settings.model_copy(update={"metrics_token": token}))
    assert_problem(await client.get("/metrics"), 401)
    for header in (f"Bearer {token}x", f"Basic {token}", "Bearer ", token):
        assert_problem(await client.get("/metrics", headers={"Authorization": header}), 401)
    r = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert "text/plain" in r.headers["content-type"]


async def test_failures_behind_a_trusted_proxy_count_per_visitor(limited, swap_state):
    from service.kit.clientip import ClientAddress

    settings = limited.state.settings.model_copy(
        update={"client_ip_header": "X-Forwarded-For", "trusted_proxies": "198.51.100.0/24"}
    )
    swap_state("settings", settings)
    swap_state("client_address", ClientAddress(settings.trusted_proxies))
    async with _from(limited, "198.51.100.9") as proxy, _from(limited, "192.0.2.50") as direct:
        for _ in range(20):
            r = await proxy.get(
                "/v1/programs",
                headers={**_wrong_key(), "X-Forwarded-For": "1.2.3.4, 203.0.113.70"},
            )
            assert_problem(r, 401)
        # The visitor behind the proxy is limited, whatever it puts on the left...
        r = await proxy.get(
            "/v1/programs", headers={**_wrong_key(), "X-Forwarded-For": "9.9.9.9, 203.0.113.70"}
        )
        assert_problem(r, 429)
        # ...another visitor through the same proxy is not...
        r = await proxy.get(
            "/v1/programs", headers={**_wrong_key(), "X-Forwarded-For": "203.0.113.71"}
        )
        assert_problem(r, 401)
        # ...and an untrusted peer cannot borrow someone else's address with the header.
        for _ in range(20):
            await direct.get(
                "/v1/programs", headers={**_wrong_key(), "X-Forwarded-For": "203.0.113.72"}
            )
        r = await proxy.get(
            "/v1/programs", headers={**_wrong_key(), "X-Forwarded-For": "203.0.113.72"}
        )
        assert_problem(r, 401)
