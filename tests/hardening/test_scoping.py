"""What a key may read, everywhere: program binding, other partners, the merchant's customers.

The world, built once:

programs A and B (10% of sales, parent override 5%, no hold) and Z (no agreement with P)
  P (the partner under test) and its child C, and another partner O, each in A and B
  sales in A: P (by click, customer `cust-…`), P again (same customer, won by customer),
              C (override to P), O;  sales in B: P, C (override to P), O
  payout runs: over A; then, after another sale of P in A, over every program (P's
  payout there spans A and B)
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.auth.keys import Principal
from service.kit.time import rfc3339
from service.models import Role
from tests.conftest import make_key
from tests.conversions.factories import click_id, sale, setup
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem
from tests.links.factories import click_token, create_link

TERMS = {
    "rules": [{"event": "sale", "type": "percent", "percent": "10"}],
    "parent_override_percent": "5",
    "hold_days": 0,
}
BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari"}
# The child's figures an override entry is computed from.
CHILD_FIGURES = {
    "partner_commission_before",
    "partner_commission_after",
    "partner_delta",
    "override_before",
    "override_after",
}


async def _click(client: Any, code: str) -> str:
    r = await client.get(f"/r/{code}", headers=BROWSER)
    assert r.status_code == 302, r.text
    return click_token(r.headers["location"])


async def _sale(client: Any, admin: dict[str, str], program: dict[str, Any], **body: Any):
    occurred = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = await client.post(
        "/v1/conversions",
        json=sale(program, amount="1000.00", occurred_at=occurred, **body),
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _run(client: Any, finance: dict[str, str], program_id: str | None) -> dict[str, Any]:
    body = {"as_of": rfc3339(datetime.now(UTC) - timedelta(seconds=1)), "program_id": program_id}
    headers = {**finance, "Idempotency-Key": f"scoping-{secrets.token_hex(8)}"}
    r = await client.post("/v1/payout-runs", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def _payout_of(run: dict[str, Any], partner: dict[str, Any]) -> str:
    [payout] = [p["id"] for p in run["payouts"] if p["partner_id"] == partner["id"]]
    return payout


@pytest.fixture(scope="module")
async def world(app: Any, client: Any, admin: dict[str, str], finance: dict[str, str]):
    a, p = await setup(client, admin, terms=TERMS)
    b, _ = await setup(client, admin, terms=TERMS, partner=p)
    c = await create_partner(client, admin, parent_id=p["id"])
    o = await create_partner(client, admin)
    for program in (a, b):
        for partner in (c, o):
            await setup(client, admin, terms=TERMS, program=program, partner=partner)
    z = await create_program(client, admin)

    links = {
        (prog["id"], who["id"]): await create_link(client, admin, prog, who)
        for prog in (a, b)
        for who in (p, c, o)
    }

    for link in links.values():
        await _click(client, link["code"])  # for the report's click rows

    async def by_click(program: dict[str, Any], who: dict[str, Any], **body: Any):
        # A click two hours before the sale: neither after it nor suspiciously fast.
        link_id = uuid.UUID(links[(program["id"], who["id"])]["id"])
        token = click_id(app, link_id, datetime.now(UTC) - timedelta(hours=2))
        return await _sale(client, admin, program, click_id=token, **body)

    customer = f"cust-{secrets.token_hex(4)}"
    email = f"{secrets.token_hex(4)}@buyer.example"
    conv: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    conv["A"].append(await by_click(a, p, customer_id=customer, customer_email=email))
    repeat = await _sale(client, admin, a, customer_id=customer)
    assert repeat["attribution"]["method"] == "customer"
    conv["A"].append(repeat)
    conv["A"].append(await by_click(a, c))
    conv["A"].append(await by_click(a, o))
    conv["B"].append(await by_click(b, p))
    conv["B"].append(await by_click(b, c))
    conv["B"].append(await by_click(b, o))

    run_a = await _run(client, finance, a["id"])
    conv["A"].append(await by_click(a, p))
    run_all = await _run(client, finance, None)

    agreements = {}
    for prog in (a, b):
        r = await client.get(
            "/v1/agreements",
            params={"partner_id": p["id"], "program_id": prog["id"]},
            headers=admin,
        )
        [agreements[prog["id"]]] = [x["id"] for x in r.json()["items"]]
    return {
        "A": a,
        "B": b,
        "Z": z,
        "P": p,
        "C": c,
        "O": o,
        "links": links,
        "conversions": conv,
        "customer": customer,
        "email": email,
        "agreements": agreements,
        "payout_a": _payout_of(run_a, p),
        "payout_span": _payout_of(run_all, p),
        "run_a": run_a["id"],
        "run_all": run_all["id"],
        "window": {
            "from": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
    }


@pytest.fixture(scope="module")
async def bound(app: Any, world: dict[str, Any]) -> dict[str, str]:
    """A key of P bound to program A."""
    return await make_key(
        app, "partner", program_ids=[world["A"]["id"]], partner_id=world["P"]["id"]
    )


async def _items(client: Any, path: str, headers: dict[str, str], **params: Any) -> list[Any]:
    r = await client.get(path, params=params, headers=headers)
    assert r.status_code == 200, r.text
    items: list[Any] = r.json()["items"]
    return items


async def test_bound_partner_lists_only_its_program(client, world, bound):
    a = world["A"]["id"]
    lists = {
        "/v1/conversions": {},
        "/v1/commissions": {},
        "/v1/agreements": {},
        "/v1/payouts": {},
        "/v1/links": {},
    }
    for path, params in lists.items():
        items = await _items(client, path, bound, **params)
        assert items, path
        programs = {i["program_id"] for i in items if "program_id" in i}
        assert programs <= {a}, (path, programs)
    conversions = await _items(client, "/v1/conversions", bound)
    mine_in_a = {x["id"] for x in world["conversions"]["A"] if x["attribution"]["partner_id"]}
    assert {x["id"] for x in conversions} <= mine_in_a
    payouts = {x["id"] for x in await _items(client, "/v1/payouts", bound)}
    # The payout of the run over A; not the one spanning A and B.
    assert payouts == {world["payout_a"]}
    rows = await client.get(
        "/v1/reports/performance",
        params={**world["window"], "group_by": "program"},
        headers=bound,
    )
    assert rows.status_code == 200, rows.text
    assert {r["key"]["program_id"] for r in rows.json()["rows"]} == {a}


async def test_bound_partner_gets_other_programs_objects_as_404(client, world, bound):
    b = world["B"]["id"]
    p = world["P"]["id"]
    paths = [
        f"/v1/conversions/{world['conversions']['B'][0]['id']}",
        f"/v1/agreements/{world['agreements'][b]}",
        f"/v1/links/{world['links'][(b, p)]['id']}",
        f"/v1/payouts/{world['payout_span']}",
    ]
    for path in paths:
        assert_problem(await client.get(path, headers=bound), 404)
    for path in ("/v1/conversions", "/v1/commissions", "/v1/agreements", "/v1/links"):
        assert await _items(client, path, bound, program_id=b) == [], path
    r = await client.get(
        "/v1/reports/performance", params={**world["window"], "program_id": b}, headers=bound
    )
    assert_problem(r, 404)
    # Its own objects in A are still there.
    a = world["A"]["id"]
    for path in (
        f"/v1/conversions/{world['conversions']['A'][0]['id']}",
        f"/v1/agreements/{world['agreements'][a]}",
        f"/v1/links/{world['links'][(a, p)]['id']}",
        f"/v1/payouts/{world['payout_a']}",
    ):
        r = await client.get(path, headers=bound)
        assert r.status_code == 200, (path, r.text)


async def test_report_for_a_program_without_agreement_is_404(app, client, world):
    unbound = await make_key(app, "partner", partner_id=world["P"]["id"])
    params = {**world["window"], "program_id": world["Z"]["id"]}
    r = await client.get("/v1/reports/performance", params=params, headers=unbound)
    assert_problem(r, 404)
    params["program_id"] = world["A"]["id"]
    r = await client.get("/v1/reports/performance", params=params, headers=unbound)
    assert r.status_code == 200, r.text


async def test_merchant_sees_only_its_programs(app, client, admin, world):
    a = world["A"]["id"]
    merchant = await make_key(app, "merchant", program_ids=[a])
    conversions = await _items(client, "/v1/conversions", merchant, limit=200)
    assert conversions and {x["program_id"] for x in conversions} == {a}
    r = await client.get(f"/v1/conversions/{world['conversions']['B'][0]['id']}", headers=merchant)
    assert_problem(r, 404)
    params = {**world["window"], "group_by": "program"}
    r = await client.get("/v1/reports/performance", params=params, headers=merchant)
    assert {row["key"]["program_id"] for row in r.json()["rows"]} == {a}
    # A partner working only in other programs is not the merchant's to report on.
    outsider = await create_partner(client, admin)
    params = {**world["window"], "partner_id": outsider["id"]}
    r = await client.get("/v1/reports/performance", params=params, headers=merchant)
    assert_problem(r, 404)


async def test_every_repository_confines_a_merchant_to_its_programs(app, world):
    from service.agreements import repository as agreements
    from service.conversions import repository as conversions
    from service.ledger import repository as commissions
    from service.links import repository as links
    from service.partners import repository as partners
    from service.payouts import repository as payouts
    from service.programs import repository as programs

    a = uuid.UUID(world["A"]["id"])
    merchant = Principal(
        key_id=uuid.uuid4(), role=Role.merchant, program_ids=frozenset({a}), partner_id=None
    )
    statements = {
        "conversions": conversions.readable(merchant),
        "commissions": commissions.readable(merchant),
        "agreements": agreements.readable(merchant),
        "links": links.readable(merchant),
        "promo codes": links.readable_promo_codes(merchant),
        "runs": payouts.readable_runs(merchant),
    }
    async with app.state.sessionmaker() as session:
        for name, stmt in statements.items():
            rows = (await session.scalars(stmt)).all()
            assert {r.program_id for r in rows} <= {a}, name
        assert {r.id for r in (await session.scalars(programs.readable(merchant))).all()} == {a}
        seen = {r.id for r in (await session.scalars(partners.readable(merchant))).all()}
        assert {uuid.UUID(world[x]["id"]) for x in "PCO"} <= seen
        payout_ids = {str(r.id) for r in (await session.scalars(payouts.readable(merchant))).all()}
        assert world["payout_a"] in payout_ids and world["payout_span"] not in payout_ids


async def test_parent_reads_its_overrides_without_the_childs_figures(app, client, world):
    parent = await make_key(app, "partner", partner_id=world["P"]["id"])
    overrides = await _items(client, "/v1/commissions", parent, kind="override")
    assert len(overrides) >= 2
    for entry in overrides:
        assert entry["partner_id"] == world["P"]["id"]
        assert not CHILD_FIGURES & set(entry["explain"]), entry["explain"]
        assert entry["explain"]["override_percent"] == "5"
        assert entry["amount"] == "5.00"
        # The agreement it was computed under is the child's.
        assert entry["agreement_id"] is None
    child = await make_key(app, "partner", partner_id=world["C"]["id"])
    for entry in await _items(client, "/v1/commissions", child):
        assert "override" not in entry["explain"], entry["explain"]
    # What the admin reads is the whole record.
    admin = await make_key(app, "admin")
    full = await _items(
        client, "/v1/commissions", admin, partner_id=world["P"]["id"], kind="override"
    )
    assert all(CHILD_FIGURES <= set(e["explain"]) for e in full)


async def test_partner_reads_no_customer_data(app, client, world):
    partner = await make_key(app, "partner", partner_id=world["P"]["id"])
    first, repeat = world["conversions"]["A"][:2]
    for conversion in (first, repeat):
        r = await client.get(f"/v1/conversions/{conversion['id']}", headers=partner)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["customer_id"] is None
        assert world["customer"] not in r.text and world["email"] not in r.text
    assert repeat["attribution"]["detail"] == {"customer_id": world["customer"]}
    listed = await client.get("/v1/conversions", headers=partner, params={"limit": 200})
    assert world["customer"] not in listed.text
    # The merchant keeps its own customer ids.
    admin = await make_key(app, "admin")
    r = await client.get(f"/v1/conversions/{first['id']}", headers=admin)
    assert r.json()["customer_id"] == world["customer"]


def _forbidden(world: dict[str, Any]) -> set[str]:
    """Ids and values a key of P bound to A must never read."""
    b = world["B"]["id"]
    out = {b, world["Z"]["id"], world["C"]["id"], world["O"]["id"], world["customer"]}
    # P's payout spanning A and B is named by the A entries locked into it (the payout
    # itself is a 404); the run over every program is not.
    out |= {world["email"], world["agreements"][b], world["run_all"]}
    out |= {x["id"] for x in world["conversions"]["B"]}
    out |= {x["order_id"] for x in world["conversions"]["B"]}
    out |= {link["id"] for (prog, _), link in world["links"].items() if prog == b}
    out |= {link["code"] for (prog, _), link in world["links"].items() if prog == b}
    a = world["A"]["id"]
    for (prog, who), link in world["links"].items():
        if prog == a and who != world["P"]["id"]:
            out |= {link["id"], link["code"]}
    # The child's conversions in A are named by P's overrides (never readable, though).
    for x in world["conversions"]["A"]:
        if x["attribution"]["partner_id"] == world["O"]["id"]:
            out |= {x["id"], x["order_id"]}
        elif x["attribution"]["partner_id"] == world["C"]["id"]:
            out.add(x["order_id"])
    return out


async def test_walk_every_get_a_bound_partner_can_reach(app, client, world, bound):
    """Every GET of the API with P's key bound to A: nothing of B, of C or O, or of customers."""
    a, b, p = world["A"]["id"], world["B"]["id"], world["P"]["id"]
    own = {
        "agreement_id": [world["agreements"][a], world["agreements"][b]],
        "conversion_id": [x["id"] for x in world["conversions"]["A"] + world["conversions"]["B"]],
        "link_id": [link["id"] for link in world["links"].values()],
        "partner_id": [p, world["C"]["id"], world["O"]["id"]],
        "payout_id": [world["payout_a"], world["payout_span"]],
        "program_id": [a, b, world["Z"]["id"]],
        "run_id": [world["run_a"], world["run_all"]],
        "promo_code_id": [str(uuid.uuid4())],
        "key_id": [str(uuid.uuid4())],
        "integration_id": [str(uuid.uuid4())],
        "endpoint_id": [str(uuid.uuid4())],
        "postback_id": [str(uuid.uuid4())],
        "application_id": [str(uuid.uuid4())],
        "deal_id": [str(uuid.uuid4())],
        "dispute_id": [str(uuid.uuid4())],
    }
    filters: list[dict[str, str]] = [
        {},
        {"program_id": b},
        {"partner_id": world["O"]["id"]},
        {"partner_id": world["C"]["id"]},
    ]
    reports = [{**world["window"], "group_by": g} for g in ("day", "partner", "link", "program")]
    reports.append({**world["window"], "group_by": "sub1"})
    reports.append({**world["window"], "group_by": "partner", "format": "csv"})
    forbidden = _forbidden(world)
    schema = app.openapi()
    walked: set[str] = set()
    answered = 0
    for template, ops in schema["paths"].items():
        if "get" not in ops or template in ("/healthz", "/readyz", "/metrics"):
            continue
        walked.add(template)
        paths = [template]
        for name in re.findall(r"{(\w+)}", template):
            paths = [path.replace(f"{{{name}}}", v) for path in paths for v in own[name]]
        queries = reports if template == "/v1/reports/performance" else filters
        for path in paths:
            for query in queries:
                r = await client.get(path, params={**query, "limit": 200}, headers=bound)
                assert r.status_code < 500, (path, r.text)
                if r.status_code != 200:
                    # A refusal may name what was asked for; it never says more.
                    assert r.status_code in (403, 404, 422), (path, query, r.status_code)
                    continue
                answered += 1
                leaked = sorted(x for x in forbidden if x in r.text)
                assert not leaked, (path, query, leaked)
    gets = {t for t, ops in schema["paths"].items() if "get" in ops} - {
        "/healthz",
        "/readyz",
        "/metrics",
    }
    assert walked == gets
    assert answered >= 20


async def test_listing_conversions_reads_their_entries_in_one_query(app, client, world):
    """A page of conversions costs one query for its ledger entries, whatever its length."""
    from sqlalchemy import event

    merchant = await make_key(app, "merchant", program_ids=[world["A"]["id"]])
    await client.get("/v1/conversions", headers=merchant)  # the key, now cached
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        r = await client.get("/v1/conversions", params={"limit": 200}, headers=merchant)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert r.status_code == 200 and len(r.json()["items"]) >= 5
    assert sum(s.count("FROM commission_entries") > 0 for s in statements) == 1, statements
