"""Nasty inputs on every write endpoint: each a 4xx problem+json naming the field, nothing stored."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from service.kit.time import rfc3339
from tests.conversions.factories import TEN_PERCENT, add_promo, sale, setup
from tests.factories import create_partner, create_program
from tests.helpers import PROBLEM
from tests.links.factories import create_link
from tests.payouts.factories import add_entry, ago

# A raw UTF-8 encoded lone surrogate (U+D800), which json.loads lets through.
RAW_SURROGATE = b"\xed\xa0\x80"
SURROGATE_MARK = "@@SURROGATE@@"

TABLES = (
    "programs",
    "partners",
    "agreements",
    "agreement_versions",
    "links",
    "promo_codes",
    "conversions",
    "refunds",
    "commission_entries",
    "fx_rates",
    "payout_runs",
    "payouts",
    "api_keys",
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


DATETIMES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z")
AMOUNTS = (
    "1e1000000",
    "1" * 1_000_000,
    "0." + "0" * 999_990 + "1",
    "NaN",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "1E+999999999999999999",
    "1e-1000000",
)
BIG_INTS = (10**30, -(10**30), 2**63, 2**31)
METADATA = (
    _nested(9),
    _nested(300),
    _nested(900),
    {f"k{i}": i for i in range(101)},
    # json.loads takes these in (json.dumps writes them); JSON has no such numbers.
    {"k": float("nan")},
    {"k": [1, float("inf")]},
    {"k": {"k": float("-inf")}},
)
LONG = "x" * 100_000


@dataclass
class Endpoint:
    name: str
    method: str
    path: str
    body: dict[str, Any] | None
    datetimes: tuple[str, ...] = ()
    amounts: tuple[str, ...] = ()
    ints: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    strings: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Case:
    endpoint: Endpoint
    field: str
    value: Any


def _set(body: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with the value at a path such as `items[0].amount` replaced."""
    out: dict[str, Any] = json.loads(json.dumps(body))
    node: Any = out
    parts = dotted.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return out


@pytest.fixture(scope="module")
async def world(client, admin, app) -> dict[str, Any]:
    """Real objects for every write endpoint to point at."""
    program, partner = await setup(client, admin)
    spare = await create_program(client, admin)
    link = await create_link(client, admin, program, partner)
    promo_code = await add_promo(app, program["id"], partner["id"])
    r = await client.get("/v1/promo-codes", params={"code": promo_code}, headers=admin)
    promo = r.json()["items"][0]
    r = await client.post("/v1/conversions", json=sale(program), headers=admin)
    assert r.status_code == 201, r.text
    conversion = r.json()
    r = await client.get("/v1/agreements", params={"partner_id": partner["id"]}, headers=admin)
    agreement = r.json()["items"][0]
    payout_program = await create_program(client, admin)
    payee = await create_partner(client, admin)
    await add_entry(app, payee["id"], payout_program["id"], 10_000, available_at=ago(days=2))
    r = await client.post(
        "/v1/payout-runs",
        json={"as_of": rfc3339(ago(days=1)), "program_id": payout_program["id"]},
        headers={**admin, "Idempotency-Key": f"k-{secrets.token_hex(6)}"},
    )
    assert r.status_code == 201, r.text
    payout = r.json()["payouts"][0]
    return {
        "program": program,
        "spare": spare,
        "partner": partner,
        "link": link,
        "promo": promo,
        "conversion": conversion,
        "agreement": agreement,
        "payout": payout,
    }


def endpoints(w: dict[str, Any]) -> list[Endpoint]:
    """Every write endpoint with a body it would accept, and the fields to spoil."""
    program, partner, conv = w["program"], w["partner"], w["conversion"]
    later = rfc3339(datetime.now(UTC) + timedelta(days=3))
    sim_from = datetime.now(UTC) - timedelta(days=30)
    return [
        Endpoint(
            "conversion",
            "POST",
            "/v1/conversions",
            {
                **sale(program),
                "items": [{"sku": "a", "amount": "100.00"}],
                "customer_id": "c1",
                "metadata": {"k": "v"},
            },
            datetimes=("occurred_at",),
            amounts=("amount", "items[0].amount"),
            ints=("items[0].quantity",),
            documents=("metadata",),
            strings=("order_id", "customer_id", "promo_code", "click_id", "items[0].sku"),
        ),
        Endpoint(
            "refund",
            "POST",
            "/v1/refunds",
            {
                "program_id": program["id"],
                "order_id": conv["order_id"],
                "refund_id": "r1",
                "amount": "1.00",
                "occurred_at": rfc3339(datetime.now(UTC)),
            },
            datetimes=("occurred_at",),
            amounts=("amount",),
            strings=("refund_id", "order_id"),
        ),
        Endpoint(
            "program",
            "POST",
            "/v1/programs",
            {"name": "p", "currency": "USD", "default_url": "https://a.example/"},
            amounts=("min_payout",),
            ints=("hold_days", "attribution_window_days"),
            strings=("name", "currency", "time_zone", "default_url", "click_param"),
        ),
        Endpoint(
            "program update",
            "PATCH",
            f"/v1/programs/{program['id']}",
            {"name": "renamed"},
            amounts=("min_payout",),
            ints=("hold_days", "attribution_window_days"),
            strings=("name", "time_zone", "default_url", "fallback_url"),
        ),
        Endpoint(
            "partner",
            "POST",
            "/v1/partners",
            {"name": "n", "email": "n@partners.example", "metadata": {}, "payout_details": {}},
            documents=("metadata", "payout_details"),
            strings=("name", "email", "payout_method"),
        ),
        Endpoint(
            "partner update",
            "PATCH",
            f"/v1/partners/{partner['id']}",
            {"metadata": {}, "payout_details": {}},
            documents=("metadata", "payout_details"),
            strings=("name", "payout_method"),
        ),
        Endpoint(
            "agreement",
            "POST",
            f"/v1/partners/{partner['id']}/agreements",
            {"program_id": w["spare"]["id"], "effective_from": later, "terms": TEN_PERCENT},
            datetimes=("effective_from",),
            amounts=("terms.rules[0].percent",),
            ints=("terms.hold_days",),
            documents=("terms",),
        ),
        Endpoint(
            "agreement version",
            "POST",
            f"/v1/agreements/{w['agreement']['id']}/versions",
            {"effective_from": later, "terms": TEN_PERCENT},
            datetimes=("effective_from",),
            amounts=("terms.rules[0].percent",),
            ints=("terms.hold_days",),
            documents=("terms",),
        ),
        Endpoint(
            "terminate",
            "POST",
            f"/v1/agreements/{w['agreement']['id']}/terminate",
            {"at": later, "reason": "r"},
            datetimes=("at",),
            strings=("reason",),
        ),
        Endpoint(
            "simulate",
            "POST",
            f"/v1/agreements/{w['agreement']['id']}/simulate",
            {
                "terms": TEN_PERCENT,
                "from": rfc3339(sim_from),
                "to": rfc3339(sim_from + timedelta(days=10)),
                "conversions": [
                    {"occurred_at": rfc3339(sim_from), "type": "sale", "amount": "10.00"}
                ],
            },
            datetimes=("from", "to", "conversions[0].occurred_at"),
            amounts=("conversions[0].amount", "terms.rules[0].percent"),
            documents=("terms",),
        ),
        Endpoint(
            "link",
            "POST",
            "/v1/links",
            {"program_id": program["id"], "partner_id": partner["id"], "expires_at": later},
            datetimes=("expires_at",),
            strings=("code", "destination_url"),
        ),
        Endpoint(
            "link update",
            "PATCH",
            f"/v1/links/{w['link']['id']}",
            {"expires_at": later},
            datetimes=("expires_at",),
            strings=("destination_url",),
        ),
        Endpoint(
            "promo code",
            "POST",
            "/v1/promo-codes",
            {
                "program_id": program["id"],
                "partner_id": partner["id"],
                "code": "NASTY1",
                "valid_from": later,
                "valid_to": later,
                "max_uses": 5,
            },
            datetimes=("valid_from", "valid_to"),
            ints=("max_uses",),
            strings=("code",),
        ),
        Endpoint(
            "promo code update",
            "PATCH",
            f"/v1/promo-codes/{w['promo']['id']}",
            {"valid_to": later, "max_uses": 5},
            datetimes=("valid_from", "valid_to"),
            ints=("max_uses",),
        ),
        Endpoint(
            "fx rate",
            "POST",
            "/v1/fx-rates",
            {"base_currency": "EUR", "quote_currency": "USD", "rate": "1.1", "date": "2026-01-01"},
            amounts=("rate",),
            strings=("base_currency", "quote_currency", "date"),
        ),
        Endpoint(
            "payout run",
            "POST",
            "/v1/payout-runs",
            {"as_of": rfc3339(ago(seconds=1)), "program_id": w["spare"]["id"]},
            datetimes=("as_of",),
            headers={"Idempotency-Key": f"nasty-{secrets.token_hex(6)}"},
        ),
        Endpoint(
            "payout paid",
            "POST",
            f"/v1/payouts/{w['payout']['id']}/paid",
            {"reference": "ref", "paid_at": rfc3339(datetime.now(UTC))},
            datetimes=("paid_at",),
            strings=("reference",),
        ),
        Endpoint(
            "payout failed",
            "POST",
            f"/v1/payouts/{w['payout']['id']}/failed",
            {"reason": "bounced"},
            strings=("reason",),
        ),
        Endpoint(
            "review",
            "POST",
            f"/v1/conversions/{conv['id']}/review",
            {"reason": "why"},
            strings=("reason",),
        ),
        Endpoint(
            "api key",
            "POST",
            "/v1/api-keys",
            {"role": "finance", "name": "k"},
            strings=("name",),
        ),
    ]


def cases(w: dict[str, Any]) -> list[Case]:
    out: list[Case] = []
    for e in endpoints(w):
        out += [Case(e, f, v) for f in e.datetimes for v in DATETIMES]
        out += [Case(e, f, v) for f in e.amounts for v in AMOUNTS]
        out += [Case(e, f, v) for f in e.ints for v in BIG_INTS]
        out += [Case(e, f, v) for f in e.documents for v in METADATA]
        out += [Case(e, f, LONG) for f in e.strings]
        out += [Case(e, f, SURROGATE_MARK) for f in e.strings]
    return out


async def _counts(app: Any) -> dict[str, int]:
    async with app.state.sessionmaker() as session:
        return {
            t: int((await session.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one())
            for t in TABLES
        }


async def _send(client: Any, admin: dict[str, str], e: Endpoint, body: Any) -> Any:
    content = json.dumps(body).encode()
    content = content.replace(SURROGATE_MARK.encode(), RAW_SURROGATE)
    headers = {**admin, **e.headers, "content-type": "application/json"}
    return await client.request(e.method, e.path, content=content, headers=headers)


def _named(r: Any, dotted: str) -> bool:
    body = r.json()
    fields = [err.get("field", "") for err in body.get("errors") or []]
    top = dotted.split(".")[0].split("[")[0]
    return any(f == dotted or f.startswith((dotted, top)) for f in fields) or (
        not fields and top in body["detail"]
    )


async def test_every_nasty_input_is_a_4xx_naming_the_field(client, admin, app, world):
    table = cases(world)
    assert len(table) > 250
    before = await _counts(app)
    failures = []
    for case in table:
        r = await _send(
            client, admin, case.endpoint, _set(case.endpoint.body, case.field, case.value)
        )
        ok = (
            400 <= r.status_code < 500
            and r.headers["content-type"].startswith(PROBLEM)
            and _named(r, case.field)
        )
        if not ok:
            shown = repr(case.value)[:40]
            failures.append(
                f"{case.endpoint.name} {case.field}={shown}: {r.status_code} {r.text[:200]}"
            )
    assert not failures, "\n".join(failures)
    assert await _counts(app) == before


async def test_nasty_query_parameters_are_4xx_naming_them(client, admin):
    far = "9999-12-31T23:59:59-14:00"
    for path, params, name in [
        ("/v1/conversions", {"from": far}, "from"),
        ("/v1/conversions", {"to": "0001-01-01T00:00:00+14:00"}, "to"),
        ("/v1/payouts/preview", {"as_of": far}, "as_of"),
        ("/v1/payouts/report", {"from": far, "to": far}, "from"),
        ("/v1/reports/performance", {"from": far}, "from"),
        ("/v1/programs", {"limit": str(10**30)}, "limit"),
        ("/v1/conversions", {"limit": "-1"}, "limit"),
    ]:
        r = await client.get(path, params=params, headers=admin)
        assert 400 <= r.status_code < 500, (path, params, r.text)
        assert name in [e["field"] for e in r.json().get("errors", [])], (path, r.text)


@pytest.mark.parametrize("amount", ["-0", "0e1000000", "-0e-999999", "0.000"])
async def test_zero_edge_cases_never_5xx(client, admin, world, amount):
    r = await client.post(
        "/v1/conversions", json=sale(world["program"], amount=amount), headers=admin
    )
    assert r.status_code < 500, r.text


async def test_metadata_at_its_bounds_is_stored(client, admin, world):
    metadata = {**_nested(8), **{f"k{i}": "v" for i in range(92)}}  # 100 keys, 8 deep
    r = await client.post(
        "/v1/conversions", json=sale(world["program"], metadata=metadata), headers=admin
    )
    assert r.status_code == 201, r.text
    assert r.json()["metadata"] == metadata


async def test_metadata_over_16_kib_is_refused(client, admin, world):
    r = await client.post(
        "/v1/conversions",
        json=sale(world["program"], metadata={"blob": "x" * (16 * 1024)}),
        headers=admin,
    )
    assert [e["field"] for e in r.json()["errors"]] == ["metadata"], r.text
    assert r.status_code == 422
