"""KPI targets and GET /v1/reports/kpis, with figures worked by hand in Asia/Tokyo (UTC+9):
its November runs from 2026-10-31T15:00Z to 2026-11-30T15:00Z."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest

from tests.conftest import make_key
from tests.conversions.factories import add_promo, sale
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem, error_fields
from tests.links.factories import create_link
from tests.partnering.factories import member
from tests.partnering.test_bounties import put_rollup

TARGETS = {
    "clicks": 200,
    "sales": 4,
    "revenue": "500.00",
    "new_customers": 2,
    "conversion_rate": "0.02",
    "commission": "50.00",
}


@pytest.fixture(scope="module")
async def tokyo(client: Any, admin: dict[str, str], app: Any) -> dict[str, Any]:
    program, partner, key = await member(client, admin, app, time_zone="Asia/Tokyo")
    link = await create_link(client, admin, program, partner)
    # Human clicks per hour, from the rollup.
    await put_rollup(app, link, "2026-10-31T14:00:00", 40)  # Oct 31 23:00 local: October
    await put_rollup(app, link, "2026-10-31T15:00:00", 100)  # Nov 1 00:00 local: November
    await put_rollup(app, link, "2026-11-30T14:00:00", 100)  # Nov 30 23:00 local: November
    await put_rollup(app, link, "2026-11-30T15:00:00", 7)  # Dec 1 00:00 local: December
    code = await add_promo(app, program["id"], partner["id"])

    async def convert(**body: Any) -> dict[str, Any]:
        r = await client.post(
            "/v1/conversions", json=sale(program, promo_code=code, **body), headers=admin
        )
        assert r.status_code == 201, r.text
        return r.json()

    # October (local): one sale, a new customer.
    await convert(amount="50.00", occurred_at="2026-10-31T14:30:00Z", customer_id="c0")
    # November (local): a new customer's sale at 00:30 on the 1st, their second sale, a lead.
    await convert(amount="100.00", occurred_at="2026-10-31T15:30:00Z", customer_id="c1")
    second = await convert(amount="300.00", occurred_at="2026-11-15T00:00:00Z", customer_id="c1")
    lead = sale(program, type="lead", promo_code=code, occurred_at="2026-11-20T00:00:00Z")
    del lead["amount"]
    assert (await client.post("/v1/conversions", json=lead, headers=admin)).status_code == 201
    r = await client.post(
        "/v1/refunds",
        json={
            "program_id": program["id"],
            "order_id": second["order_id"],
            "refund_id": "rf-1",
            "amount": "50.00",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/v1/kpi-targets",
        json={
            "program_id": program["id"],
            "partner_id": partner["id"],
            "period": "month",
            "start": "2026-11-01",
            "targets": TARGETS,
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return {"program": program, "partner": partner, "key": key, "target": r.json()}


def by_metric(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["metric"]: {k: v for k, v in m.items() if k != "metric"} for m in body["metrics"]}


# November, ended: projected is the actual. Worked by hand:
# clicks 100 + 100 (the 40 are October's, the 7 December's); sales 100.00 and 300.00, the
# lead counts in the rate only: (1 + 2) / 200 = 0.015; revenue 400.00 - 50.00 refunded;
# one new customer (c1's first sale); commission 10 % = 10.00 + 30.00 - 5.00 reversed.
NOVEMBER = {
    "clicks": dict(target=200, actual=200, attainment="1.0000", previous=40, change="4.0000",
                   projected=200, on_track=True),
    "sales": dict(target=4, actual=2, attainment="0.5000", previous=1, change="1.0000",
                  projected=2, on_track=False),
    "revenue": dict(target="500.00", actual="350.00", attainment="0.7000", previous="50.00",
                    change="6.0000", projected="350.00", on_track=False),
    "new_customers": dict(target=2, actual=1, attainment="0.5000", previous=1, change="0.0000",
                          projected=1, on_track=False),
    "conversion_rate": dict(target="0.02", actual="0.0150", attainment="0.7500",
                            previous="0.0250", change="-0.4000", projected="0.0150",
                            on_track=False),
    "commission": dict(target="50.00", actual="35.00", attainment="0.7000", previous="5.00",
                       change="6.0000", projected="35.00", on_track=False),
}  # fmt: skip


async def test_partner_month_in_tokyo_worked_by_hand(client, admin, tokyo):
    params = {
        "program_id": tokyo["program"]["id"],
        "partner_id": tokyo["partner"]["id"],
        "period": "month",
        "start": "2026-11-01",
    }
    r = await client.get("/v1/reports/kpis", params=params, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["time_zone"] == "Asia/Tokyo" and body["end"] == "2026-12-01"
    assert body["target_id"] == tokyo["target"]["id"]
    assert by_metric(body) == NOVEMBER
    # The partner's own key gets the same figures, without naming itself.
    params.pop("partner_id")
    mine = (await client.get("/v1/reports/kpis", params=params, headers=tokyo["key"])).json()
    assert by_metric(mine) == NOVEMBER


async def test_whole_program_has_its_own_targets(client, admin, tokyo):
    params = {"program_id": tokyo["program"]["id"], "period": "month", "start": "2026-11-01"}
    body = (await client.get("/v1/reports/kpis", params=params, headers=admin)).json()
    metrics = by_metric(body)
    assert body["partner_id"] is None and body["target_id"] is None
    assert metrics["revenue"]["actual"] == "350.00" and metrics["revenue"]["target"] is None
    assert metrics["revenue"]["attainment"] is None and metrics["revenue"]["on_track"] is None


async def test_quarter_and_a_previous_period_without_activity(client, admin, tokyo):
    params = {"program_id": tokyo["program"]["id"], "period": "quarter", "start": "2026-10-01"}
    metrics = by_metric((await client.get("/v1/reports/kpis", params=params, headers=admin)).json())
    # October, November and December 1 (local): 40 + 200 + 7.
    assert metrics["clicks"]["actual"] == 247 and metrics["clicks"]["previous"] == 0
    assert metrics["clicks"]["change"] is None
    assert metrics["sales"]["actual"] == 3 and metrics["revenue"]["actual"] == "400.00"
    assert metrics["commission"]["actual"] == "40.00"


async def test_csv(client, admin, tokyo):
    params = {
        "program_id": tokyo["program"]["id"],
        "partner_id": tokyo["partner"]["id"],
        "start": "2026-11-01",
        "format": "csv",
    }
    r = await client.get("/v1/reports/kpis", params=params, headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["metric"] for row in rows] == list(NOVEMBER)
    rate = rows[4]
    assert (rate["target"], rate["actual"], rate["change"], rate["on_track"]) == (
        "0.02",
        "0.0150",
        "-0.4000",
        "false",
    )


async def test_other_partners_and_bad_periods(client, admin, app, tokyo):
    program = tokyo["program"]
    _, _, other_key = await member(client, admin, app, program=program)
    params = {
        "program_id": program["id"],
        "partner_id": tokyo["partner"]["id"],
        "start": "2026-11-01",
    }
    assert_problem(await client.get("/v1/reports/kpis", params=params, headers=other_key), 404)
    bad = {"program_id": program["id"], "start": "2026-11-02"}
    assert "start" in error_fields(await client.get("/v1/reports/kpis", params=bad, headers=admin))
    bad = {"program_id": program["id"], "start": "2026-11-01", "period": "quarter"}
    assert "start" in error_fields(await client.get("/v1/reports/kpis", params=bad, headers=admin))
    bad = {"program_id": str(uuid.uuid4()), "start": "2026-11-01"}
    assert_problem(await client.get("/v1/reports/kpis", params=bad, headers=admin), 404)
    # A merchant of another program does not see this one.
    elsewhere = await create_program(client, admin)
    merchant = await make_key(app, "merchant", program_ids=[uuid.UUID(elsewhere["id"])])
    ok = {"program_id": program["id"], "start": "2026-11-01"}
    assert_problem(await client.get("/v1/reports/kpis", params=ok, headers=merchant), 404)


async def test_targets_are_validated_and_one_per_period(client, admin, tokyo):
    base = {
        "program_id": tokyo["program"]["id"],
        "partner_id": tokyo["partner"]["id"],
        "period": "month",
        "start": "2026-11-01",
    }
    r = await client.post("/v1/kpi-targets", json={**base, "targets": {"sales": 1}}, headers=admin)
    assert_problem(r, 409)
    assert r.json()["kpi_target_id"] == tokyo["target"]["id"]
    dec = {**base, "start": "2026-12-01"}
    for targets, field in (
        ({"revenue": "1.001"}, "targets.revenue"),
        ({"clicks": -1}, "targets.clicks"),
        ({"clicks": "10"}, "targets.clicks"),
        ({"conversion_rate": "-0.1"}, "targets.conversion_rate"),
        ({}, "targets"),
    ):
        r = await client.post("/v1/kpi-targets", json={**dec, "targets": targets}, headers=admin)
        assert field in error_fields(r), (targets, r.text)
    r = await client.post(
        "/v1/kpi-targets",
        json={**dec, "start": "2026-12-15", "targets": {"sales": 1}},
        headers=admin,
    )
    assert "start" in error_fields(r)
    stranger = await create_partner(client, admin)
    r = await client.post(
        "/v1/kpi-targets",
        json={**dec, "partner_id": stranger["id"], "targets": {"sales": 1}},
        headers=admin,
    )
    assert "partner_id" in error_fields(r)
    # PATCH replaces the values.
    r = await client.patch(
        f"/v1/kpi-targets/{tokyo['target']['id']}",
        json={"targets": {**TARGETS, "sales": 2}},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["targets"]["sales"] == 2
    listed = (
        await client.get(
            "/v1/kpi-targets", params={"program_id": tokyo["program"]["id"]}, headers=admin
        )
    ).json()["items"]
    assert [t["id"] for t in listed] == [tokyo["target"]["id"]]
    await client.patch(
        f"/v1/kpi-targets/{tokyo['target']['id']}", json={"targets": TARGETS}, headers=admin
    )
