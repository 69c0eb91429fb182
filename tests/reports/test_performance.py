"""GET /v1/reports/performance over real clicks (through /r/{code}) and real conversions.

The figures are worked out by hand from the world built once in `world`:

program A (USD, 10% of sales, 3.00 per lead, parent override 5%)
  partner P1: link L1, link L2, a promo code; partner P2 (child of PP): link L3
  L1: c1 (visitor 1, sub1=spring), c2 (visitor 1, sub1=spring), c3 (visitor 2), a bot (sub1=spring)
  L2: c4 (visitor 1, sub1=fall)
  L3: c5 (visitor 1, sub1=spring), c6 (visitor 3)
  S1 sale 100.00 on c1, refunded 30.00  -> revenue 70.00, commission 10.00 - 3.00 = 7.00
  D1 lead on c3                         -> commission 3.00
  S2 sale 50.00 on c4                   -> commission 5.00
  S3 sale 200.00 on c5, rejected        -> nothing (20.00 - 20.00; PP's 1.00 - 1.00)
  S4 sale 40.00 on c6                   -> commission 4.00 (PP's override 0.20 apart)
  S5 sale 10.00 by P1's promo code      -> commission 1.00, no link, no sub1
"""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from service.kit.csvout import text_cell
from service.models import ClickRollupSub1Hourly
from service.reports.service import conversion_rate, day_boundaries, epc
from tests.conftest import make_key
from tests.conversions.factories import add_promo, sale, setup
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem, error_fields
from tests.links.factories import click_token, create_link

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
VISITOR = {n: {"user-agent": f"{BROWSER} v{n}"} for n in (1, 2, 3)}
BOT = {"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}

TERMS = {
    "rules": [
        {"event": "sale", "type": "percent", "percent": "10"},
        {"event": "lead", "type": "flat", "amount": "3.00"},
    ],
    "parent_override_percent": "5",
    "hold_days": 30,
}

# Metric columns in answer order: clicks, unique_clicks, bots, leads, sales,
# conversion_rate, revenue, commission, epc.
METRICS = (
    "clicks",
    "unique_clicks",
    "bots",
    "leads",
    "sales",
    "conversion_rate",
    "revenue",
    "commission",
    "epc",
)


def m(*values: Any, currency: str = "USD") -> dict[str, Any]:
    return {"currency": currency, **dict(zip(METRICS, values, strict=True))}


async def _click(client: Any, code: str, headers: dict[str, str], sub1: str | None = None) -> str:
    query = f"?{urlencode({'sub1': sub1})}" if sub1 else ""
    r = await client.get(f"/r/{code}{query}", headers=headers)
    # Durable mode: the 302 is sent once the click (and its rollups) are committed.
    assert r.status_code == 302, r.text
    return click_token(r.headers["location"])


async def _convert(client: Any, admin: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/v1/conversions", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
async def world(app: Any, client: Any, admin: dict[str, str]) -> dict[str, Any]:
    started = datetime.now(UTC)
    program, p1 = await setup(client, admin, terms=TERMS)
    parent = await create_partner(client, admin)
    p2 = await create_partner(client, admin, parent_id=parent["id"])
    await setup(client, admin, terms=TERMS, program=program, partner=p2)
    l1 = await create_link(client, admin, program, p1)
    l2 = await create_link(client, admin, program, p1)
    l3 = await create_link(client, admin, program, p2)

    c1 = await _click(client, l1["code"], VISITOR[1], "spring")
    await _click(client, l1["code"], VISITOR[1], "spring")
    c3 = await _click(client, l1["code"], VISITOR[2])
    await _click(client, l1["code"], BOT, "spring")
    c4 = await _click(client, l2["code"], VISITOR[1], "fall")
    c5 = await _click(client, l3["code"], VISITOR[1], "spring")
    c6 = await _click(client, l3["code"], VISITOR[3])

    s1 = await _convert(client, admin, sale(program, amount="100.00", click_id=c1))
    lead = sale(program, type="lead", click_id=c3)
    del lead["amount"]
    await _convert(client, admin, lead)
    await _convert(client, admin, sale(program, amount="50.00", click_id=c4))
    s3 = await _convert(client, admin, sale(program, amount="200.00", click_id=c5))
    await _convert(client, admin, sale(program, amount="40.00", click_id=c6))
    promo = await add_promo(app, program["id"], p1["id"])
    s5 = await _convert(client, admin, sale(program, amount="10.00", promo_code=promo))
    assert s5["attribution"]["method"] == "promo_code"

    r = await client.post(
        "/v1/refunds",
        json={
            "program_id": program["id"],
            "order_id": s1["order_id"],
            "refund_id": f"rf-{secrets.token_hex(4)}",
            "amount": "30.00",
        },
        headers=admin,
    )
    assert r.status_code in (200, 201), r.text
    r = await client.post(
        f"/v1/conversions/{s3['id']}/reject", json={"reason": "fraud"}, headers=admin
    )
    assert r.status_code == 200, r.text
    return {
        "program": program,
        "p1": p1,
        "p2": p2,
        "parent": parent,
        "links": (l1, l2, l3),
        "window": {
            "from": (started - timedelta(hours=1)).isoformat(),
            "to": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
        "days": {started.date(), datetime.now(UTC).date()},
    }


async def _report(client: Any, headers: dict[str, str], world: dict[str, Any], **params: Any):
    query = {**world["window"], **params}
    r = await client.get("/v1/reports/performance", params=query, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _strip(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "key"}


TOTALS = m(6, 5, 1, 1, 4, "0.8333", "170.00", "20.00", "3.33")


async def test_by_link(client, admin, world):
    l1, l2, l3 = world["links"]
    body = await _report(client, admin, world, program_id=world["program"]["id"], group_by="link")
    assert body["group_by"] == "link" and body["time_zone"] == "UTC"
    assert body["filters"] == {
        "program_id": world["program"]["id"],
        "partner_id": None,
        "link_id": None,
    }
    got = {row["key"]["link_id"]: (row["key"]["code"], _strip(row)) for row in body["rows"]}
    assert got == {
        l1["id"]: (l1["code"], m(3, 2, 1, 1, 1, "0.6667", "70.00", "10.00", "3.33")),
        l2["id"]: (l2["code"], m(1, 1, 0, 0, 1, "1.0000", "50.00", "5.00", "5.00")),
        l3["id"]: (l3["code"], m(2, 2, 0, 0, 1, "0.5000", "40.00", "4.00", "2.00")),
        None: (None, m(0, 0, 0, 0, 1, None, "10.00", "1.00", None)),
    }
    # Links by code, then the conversions that came without a link.
    assert body["rows"][-1]["key"]["link_id"] is None
    assert body["totals"] == [TOTALS]


async def test_by_partner_credits_overrides_to_the_parent(client, admin, world):
    body = await _report(
        client, admin, world, program_id=world["program"]["id"], group_by="partner"
    )
    got = {
        row["key"]["partner_id"]: (row["key"]["partner_name"], _strip(row)) for row in body["rows"]
    }
    p1, p2, parent = world["p1"], world["p2"], world["parent"]
    assert got == {
        p1["id"]: (p1["name"], m(4, 3, 1, 1, 3, "1.0000", "130.00", "16.00", "4.00")),
        p2["id"]: (p2["name"], m(2, 2, 0, 0, 1, "0.5000", "40.00", "4.00", "2.00")),
        parent["id"]: (parent["name"], m(0, 0, 0, 0, 0, None, "0.00", "0.20", None)),
    }
    assert body["totals"] == [m(6, 5, 1, 1, 4, "0.8333", "170.00", "20.20", "3.37")]


async def test_by_program_and_by_day(client, admin, world):
    program = world["program"]
    body = await _report(client, admin, world, program_id=program["id"], group_by="program")
    assert [r["key"] for r in body["rows"]] == [
        {"program_id": program["id"], "name": program["name"]}
    ]
    assert _strip(body["rows"][0]) == TOTALS
    body = await _report(client, admin, world, program_id=program["id"])
    assert body["group_by"] == "day" and body["day_boundaries"] == "exact"
    assert {r["key"]["day"] for r in body["rows"]} <= {d.isoformat() for d in world["days"]}
    assert body["totals"] == [TOTALS]
    if len(world["days"]) == 1:  # not run across midnight UTC
        assert [_strip(r) for r in body["rows"]] == [TOTALS]


async def test_by_sub1(app, client, admin, world):
    body = await _report(client, admin, world, program_id=world["program"]["id"], group_by="sub1")
    got = {row["key"]["sub1"]: _strip(row) for row in body["rows"]}
    assert got == {
        # c1, c2, c5 and the bot; S1 (70.00, 7.00); S3 rejected.
        "spring": m(3, None, 1, 0, 1, "0.3333", "70.00", "7.00", "2.33"),
        "fall": m(1, None, 0, 0, 1, "1.0000", "50.00", "5.00", "5.00"),
        # c3, c6; D1 (3.00), S4 (40.00, 4.00), S5 (10.00, 1.00, no click).
        None: m(2, None, 0, 1, 2, "1.5000", "50.00", "8.00", "4.00"),
    }
    assert [r["key"]["sub1"] for r in body["rows"]] == ["fall", "spring", None]
    assert body["totals"] == [m(6, None, 1, 1, 4, "0.8333", "170.00", "20.00", "3.33")]


async def test_sub1_rollup_is_written_with_the_clicks(app, world):
    l1 = world["links"][0]
    async with app.state.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(ClickRollupSub1Hourly).where(ClickRollupSub1Hourly.link_id == l1["id"])
            )
        ).all()
    by_sub1: dict[str, list[int]] = {}
    for row in rows:
        assert str(row.partner_id) == world["p1"]["id"]
        assert str(row.program_id) == world["program"]["id"]
        assert row.hour.minute == 0 and row.hour.second == 0
        counts = by_sub1.setdefault(row.sub1, [0, 0])
        counts[0] += row.clicks
        counts[1] += row.bots
    assert by_sub1 == {"spring": [2, 1], "": [1, 0]}


async def test_link_filter(client, admin, world):
    l1 = world["links"][0]
    body = await _report(client, admin, world, link_id=l1["id"], group_by="partner")
    assert [r["key"]["partner_id"] for r in body["rows"]] == [world["p1"]["id"]]
    assert body["totals"] == [m(3, 2, 1, 1, 1, "0.6667", "70.00", "10.00", "3.33")]


async def test_csv_is_the_json(client, admin, world):
    for group_by in ("link", "sub1", "partner", "program", "day"):
        params = {"program_id": world["program"]["id"], "group_by": group_by}
        body = await _report(client, admin, world, **params)
        r = await client.get(
            "/v1/reports/performance",
            params={**world["window"], **params, "format": "csv"},
            headers=admin,
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        lines = list(csv.DictReader(io.StringIO(r.text)))
        assert len(lines) == len(body["rows"])
        key_columns = {
            "day": ["day"],
            "partner": ["partner_id", "partner_name"],
            "link": ["link_id", "code"],
            "program": ["program_id", "program_name"],
            "sub1": ["sub1"],
        }[group_by]
        assert list(lines[0]) == [*key_columns, "currency", *METRICS]
        for line, row in zip(lines, body["rows"], strict=True):
            expected = {**row["key"], **_strip(row)}
            if "name" in expected and group_by == "program":
                expected["program_name"] = expected.pop("name")
            # Text keys are written spreadsheet-safe (a code may start with "-").
            want = {k: "" if v is None else str(v) for k, v in expected.items()}
            want.update({k: text_cell(want[k]) for k in key_columns})
            assert line == want


async def test_accept_header_asks_for_csv(client, admin, world):
    r = await client.get(
        "/v1/reports/performance",
        params={**world["window"], "program_id": world["program"]["id"]},
        headers={**admin, "accept": "text/csv"},
    )
    assert next(csv.reader(io.StringIO(r.text))) == (
        "day,currency,clicks,unique_clicks,bots,leads,sales,conversion_rate,revenue,commission,epc"
    ).split(",")


# --- who sees what -----------------------------------------------------------


async def test_partner_sees_only_itself(app, client, world):
    p1, p2 = world["p1"], world["p2"]
    key = await make_key(app, "partner", partner_id=p1["id"])
    body = await _report(client, key, world, group_by="link")
    assert {r["key"]["link_id"] for r in body["rows"]} == {
        world["links"][0]["id"],
        world["links"][1]["id"],
        None,
    }
    assert body["totals"] == [m(4, 3, 1, 1, 3, "1.0000", "130.00", "16.00", "4.00")]
    same = await _report(client, key, world, group_by="partner", partner_id=p1["id"])
    assert [r["key"]["partner_id"] for r in same["rows"]] == [p1["id"]]
    for params in ({"partner_id": p2["id"]}, {"link_id": world["links"][2]["id"]}):
        r = await client.get(
            "/v1/reports/performance", params={**world["window"], **params}, headers=key
        )
        assert_problem(r, 404)


async def test_parent_sees_its_overrides_by_partner_only(app, client, world):
    key = await make_key(app, "partner", partner_id=world["parent"]["id"])
    body = await _report(client, key, world, group_by="partner")
    assert [_strip(r) for r in body["rows"]] == [m(0, 0, 0, 0, 0, None, "0.00", "0.20", None)]
    assert (await _report(client, key, world, group_by="link"))["rows"] == []


async def test_merchant_sees_only_its_programs(app, client, admin, world):
    program = world["program"]
    other = await create_program(client, admin)
    key = await make_key(app, "merchant", program_ids=[program["id"]])
    body = await _report(client, key, world, group_by="program")
    assert [r["key"]["program_id"] for r in body["rows"]] == [program["id"]]
    assert body["totals"] == [TOTALS]
    r = await client.get("/v1/reports/performance", params={"program_id": other["id"]}, headers=key)
    assert_problem(r, 404)
    foreign = await create_link(client, admin, other, await create_partner(client, admin))
    r = await client.get("/v1/reports/performance", params={"link_id": foreign["id"]}, headers=key)
    assert_problem(r, 404)


async def test_finance_reads_and_others_need_a_key(client, finance, world):
    body = await _report(client, finance, world, program_id=world["program"]["id"])
    assert body["totals"] == [TOTALS]
    assert_problem(await client.get("/v1/reports/performance"), 401)


async def test_unknown_filters_are_404(client, admin):
    for name in ("program_id", "partner_id", "link_id"):
        r = await client.get(
            "/v1/reports/performance",
            params={name: "01890000-0000-7000-8000-000000000000"},
            headers=admin,
        )
        assert_problem(r, 404)


# --- currencies and time zones -------------------------------------------------


async def test_rows_split_by_currency(client, admin):
    usd, partner = await setup(client, admin, terms=TERMS)
    eur, _ = await setup(client, admin, terms=TERMS, partner=partner, currency="EUR")
    started = datetime.now(UTC)
    for program, amount in ((usd, "20.00"), (eur, "30.00")):
        link = await create_link(client, admin, program, partner)
        token = await _click(client, link["code"], VISITOR[1])
        await _convert(client, admin, sale(program, amount=amount, click_id=token))
    # Clicks count by the start of their hour: the window starts on one.
    hour = started.replace(minute=0, second=0, microsecond=0)
    world = {
        "window": {
            "from": hour.isoformat(),
            "to": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        }
    }
    body = await _report(client, admin, world, partner_id=partner["id"], group_by="partner")
    assert [_strip(r) for r in body["rows"]] == [
        m(1, 1, 0, 0, 1, "1.0000", "30.00", "3.00", "3.00", currency="EUR"),
        m(1, 1, 0, 0, 1, "1.0000", "20.00", "2.00", "2.00", currency="USD"),
    ]
    assert [t["currency"] for t in body["totals"]] == ["EUR", "USD"]


async def test_time_zone_defaults_and_day_boundaries(client, admin):
    kolkata = await create_program(client, admin, time_zone="Asia/Kolkata")
    r = await client.get(
        "/v1/reports/performance", params={"program_id": kolkata["id"]}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["time_zone"] == "Asia/Kolkata"
    assert r.json()["day_boundaries"] == "approximate to the hour"
    r = await client.get(
        "/v1/reports/performance",
        params={"program_id": kolkata["id"], "time_zone": "America/New_York"},
        headers=admin,
    )
    assert (r.json()["time_zone"], r.json()["day_boundaries"]) == ("America/New_York", "exact")
    body = (await client.get("/v1/reports/performance", headers=admin)).json()
    assert body["time_zone"] == "UTC"
    start, end = datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])
    assert end - start == timedelta(days=30)
    assert end.tzinfo is not None and abs(datetime.now(UTC) - end) < timedelta(minutes=1)


def test_day_boundaries_follow_the_offsets_in_the_range():
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    assert day_boundaries("Europe/Paris", jan, jan + timedelta(days=400)) == "exact"
    assert day_boundaries("Pacific/Chatham", jan, jan + timedelta(days=1)) != "exact"
    # Lord Howe is +10:30 in its winter and +11 in summer.
    assert day_boundaries("Australia/Lord_Howe", jan, jan + timedelta(days=1)) == "exact"
    assert day_boundaries("Australia/Lord_Howe", jan, jan + timedelta(days=200)) != "exact"


async def test_days_follow_the_time_zone(app, client, admin):
    # 23:30 UTC is the next day in Tokyo (+09:00) and the same day in New York.
    program, partner = await setup(client, admin, terms=TERMS)
    at = datetime.now(UTC).replace(hour=23, minute=30, second=0, microsecond=0) - timedelta(days=1)
    promo = await add_promo(app, program["id"], partner["id"])
    await _convert(
        client, admin, sale(program, amount="10.00", promo_code=promo, occurred_at=at.isoformat())
    )
    window = {
        "from": (at - timedelta(hours=1)).isoformat(),
        "to": (at + timedelta(hours=1)).isoformat(),
    }
    for zone, day in (
        ("Asia/Tokyo", at.date() + timedelta(days=1)),
        ("America/New_York", at.date()),
    ):
        body = await _report(
            client, admin, {"window": window}, program_id=program["id"], time_zone=zone
        )
        assert [r["key"]["day"] for r in body["rows"]] == [day.isoformat()]
        assert body["rows"][0]["sales"] == 1


# --- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-11-01T00:00:00"}, "from"),
        ({"to": "2026-11-01T00:00:00"}, "to"),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
        ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"group_by": "week"}, "group_by"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"format": "xml"}, "format"),
        ({"program_id": "nope"}, "program_id"),
    ],
)
async def test_bad_parameters_are_422(client, admin, params, field):
    r = await client.get("/v1/reports/performance", params=params, headers=admin)
    assert error_fields(r) == [field]


def test_rate_and_epc_rounding():
    assert conversion_rate(2, 3) == "0.6667"
    assert conversion_rate(1, 8) == "0.1250"
    assert conversion_rate(1, 0) is None
    # Half-even to the minor unit: 0.125 -> 0.12, 0.375 -> 0.38; JPY has none, KWD three.
    assert epc(125, 10, "USD") == "0.12"
    assert epc(375, 10, "USD") == "0.38"
    assert epc(1001, 2, "JPY") == "500"
    assert epc(1001, 2, "KWD") == "0.500"
    assert epc(1003, 2, "KWD") == "0.502"
    assert epc(-300, 4, "USD") == "-0.75"
    assert epc(5, 0, "USD") is None
