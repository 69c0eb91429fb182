"""schemathesis over openapi/openapi.json against the served app: no 5xx, nothing off-spec.

The app runs under uvicorn in a thread (its own event loop; the generated cases call it
synchronously over 127.0.0.1) on a database of its own, so that what the fuzzer writes
(payout runs over every program, revoked keys) reaches no other test.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service import migrate
from service.app import create_asgi
from service.auth.keys import create_key
from service.db import create_engine, create_sessionmaker
from service.models import Role
from tests.conftest import settings_for_tests
from tests.conversions.factories import sale, setup
from tests.helpers import free_port
from tests.links.factories import create_link

# Per operation. 56 operations x 25 keep the whole run near a minute on two busy cores.
MAX_EXAMPLES = 25

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
# 413 is a fair refusal of a body past its maxItems: ten thousand conversions make a
# body over the 1 MiB limit, so the limit answers before validation would.
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
)
schema = schemathesis.openapi.from_path(str(SPEC), config=CONFIG)

# positive_data_acceptance is left out: a schema-valid body is often refused by a rule no
# JSON Schema states (an ISO currency, a real time zone, a program the partner is in), and
# a 4xx for those is right. The ids in paths are replaced with real ones, so a 404 from a
# random UUID is rare, but not every 404 means a bug either.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass
class Served:
    url: str
    headers: dict[str, str]
    ids: dict[str, str]
    statuses: Counter[int] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)


@pytest.fixture(scope="module")
async def served(pg_server: Any) -> AsyncIterator[Served]:
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url)
    asgi = create_asgi(settings_for_tests(), database_url=url)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="critical", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "the server did not start"
    try:
        admin = {"Authorization": f"Bearer {await _admin_key(url)}"}
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            ids = await _world(client, admin)
        served = Served(base, admin, ids)
        yield served
        took = time.monotonic() - served.started
        cases = sum(served.statuses.values())
        fivexx = sum(n for s, n in served.statuses.items() if s >= 500)
        print(f"\nfuzz: {cases} cases, 5xx={fivexx}, {took:.0f}s, statuses {dict(served.statuses)}")
    finally:
        server.should_exit = True
        thread.join(15)


async def _admin_key(url: str) -> str:
    engine = create_engine(url, settings_for_tests())
    try:
        async with create_sessionmaker(engine)() as session:
            _, key = await create_key(session, Role.admin)
            await session.commit()
    finally:
        await engine.dispose()
    return key


async def _world(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    """One of each object, so that path ids lead somewhere."""
    program, partner = await setup(client, admin)
    link = await create_link(client, admin, program, partner)
    r = await client.post("/v1/conversions", json=sale(program), headers=admin)
    assert r.status_code == 201, r.text
    conversion = r.json()
    r = await client.get("/v1/agreements", params={"partner_id": partner["id"]}, headers=admin)
    agreement = r.json()["items"][0]
    r = await client.post(
        "/v1/promo-codes",
        json={"program_id": program["id"], "partner_id": partner["id"], "code": "FUZZ10"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    promo = r.json()
    r = await client.post(
        "/v1/api-keys", json={"role": "partner", "partner_id": partner["id"]}, headers=admin
    )
    assert r.status_code == 201, r.text
    return {
        "program_id": program["id"],
        "partner_id": partner["id"],
        "link_id": link["id"],
        "agreement_id": agreement["id"],
        "promo_code_id": promo["id"],
        "conversion_id": conversion["id"],
        "key_id": r.json()["id"],
    }


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_holds_to_the_spec(case: Any, served: Served) -> None:
    for name in list(case.path_parameters or {}):
        if name in served.ids and _looks_like_uuid(case.path_parameters[name]):
            case.path_parameters[name] = served.ids[name]
    response = case.call(base_url=served.url, headers=served.headers, timeout=30)
    served.statuses[response.status_code] += 1
    case.validate_response(response, checks=CHECKS)


def _looks_like_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
