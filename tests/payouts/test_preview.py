"""GET /v1/payouts/preview: hold period, minimum, clawbacks, review holds, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from service.kit.time import rfc3339
from service.payouts.exports import PREVIEW_COLUMNS
from tests.conftest import make_key
from tests.factories import create_partner, create_program
from tests.helpers import assert_problem, error_fields
from tests.payouts.factories import add_entry, ago, item_of, setup


async def _preview(client, finance, program_id, as_of=None, **extra):
    params = {"program_id": program_id, **extra}
    if as_of is not None:
        params["as_of"] = rfc3339(as_of)
    r = await client.get("/v1/payouts/preview", params=params, headers=finance)
    assert r.status_code == 200, r.text
    return r.json()


async def test_hold_period_boundary(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    as_of = ago(days=3)
    await add_entry(app, p["id"], prog["id"], 1000, available_at=as_of)
    await add_entry(app, p["id"], prog["id"], 250, available_at=as_of + timedelta(seconds=1))
    row = item_of(await _preview(client, finance, prog["id"], as_of), p["id"])
    assert row["payable"] == "10.00" and row["pending"] == "2.50" and row["entry_count"] == 1
    later = item_of(
        await _preview(client, finance, prog["id"], as_of + timedelta(seconds=1)), p["id"]
    )
    assert later["payable"] == "12.50" and later["pending"] == "0.00" and later["entry_count"] == 2


async def test_minimum_payout_boundary(client, admin, finance, app):
    prog, (under, at) = await setup(client, admin, partners=2, min_payout="50.00")
    await add_entry(app, under["id"], prog["id"], 4999)
    await add_entry(app, at["id"], prog["id"], 5000)
    body = await _preview(client, finance, prog["id"])
    u, a = item_of(body, under["id"]), item_of(body, at["id"])
    assert (u["eligible"], u["carried"], u["min_payout"]) == (False, "49.99", "50.00")
    assert (a["eligible"], a["carried"]) == (True, "0.00")
    totals = body["totals"]["USD"]
    assert totals["amount_to_pay"] == "50.00" and totals["eligible_count"] == 1
    assert totals["carried"] == "49.99" and totals["payable"] == "99.99"


async def test_negative_balance_is_carried(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    await add_entry(app, p["id"], prog["id"], 1000)
    await add_entry(app, p["id"], prog["id"], -3000, kind="reversal")
    row = item_of(await _preview(client, finance, prog["id"]), p["id"])
    assert row["payable"] == "-20.00" and row["carried"] == "-20.00" and not row["eligible"]


async def test_review_holds_and_rejection_nets_out(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    await add_entry(app, p["id"], prog["id"], 700, conversion_status="review")
    rejected = await add_entry(app, p["id"], prog["id"], 900, conversion_status="rejected")
    await add_entry(
        app, p["id"], prog["id"], -900, kind="reversal", conversion_id=rejected.conversion_id
    )
    await add_entry(app, p["id"], prog["id"], 100, conversion_status="accepted")
    row = item_of(await _preview(client, finance, prog["id"]), p["id"])
    assert row["on_hold"] == "7.00" and row["payable"] == "1.00"
    assert row["entry_count"] == 3 and row["eligible"]


async def test_agreement_free_partner_uses_the_smallest_minimum_over_programs(
    client, admin, finance, app
):
    big = await create_program(client, admin, min_payout="50.00")
    small = await create_program(client, admin, min_payout="10.00")
    p = await create_partner(client, admin)
    await add_entry(app, p["id"], big["id"], 1200)
    await add_entry(app, p["id"], small["id"], 300)
    r = await client.get("/v1/payouts/preview", headers=finance)
    row = item_of(r.json(), p["id"])
    assert row["payable"] == "15.00" and row["min_payout"] == "10.00" and row["eligible"]
    only_big = item_of(await _preview(client, finance, big["id"]), p["id"])
    assert only_big["min_payout"] == "50.00" and not only_big["eligible"]


async def test_currencies_are_kept_apart(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    await add_entry(app, p["id"], prog["id"], 1000, "USD")
    await add_entry(app, p["id"], prog["id"], 123, "JPY")
    body = await _preview(client, finance, prog["id"])
    assert item_of(body, p["id"], "JPY")["payable"] == "123"
    assert set(body["totals"]) == {"USD", "JPY"}


async def test_csv_parses_back_to_the_json(client, admin, finance, app):
    prog, partners = await setup(client, admin, partners=3, min_payout="20.00")
    for i, p in enumerate(partners):
        await add_entry(app, p["id"], prog["id"], 1234 * (i + 1))
        await add_entry(app, p["id"], prog["id"], -999, kind="reversal")
        await add_entry(app, p["id"], prog["id"], 77, available_at=ago(days=-5))
    as_of = ago(seconds=1)
    body = await _preview(client, finance, prog["id"], as_of)
    for how in ({"format": "csv"}, {}):
        headers = {**finance, **({} if how else {"Accept": "text/csv"})}
        r = await client.get(
            "/v1/payouts/preview",
            params={"program_id": prog["id"], "as_of": rfc3339(as_of), **how},
            headers=headers,
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert tuple(csv.reader(io.StringIO(r.text)).__next__()) == PREVIEW_COLUMNS
        as_json = [{k: str(v) for k, v in i.items()} for i in body["items"]]
        for row in as_json:
            row["eligible"] = row["eligible"].lower()
            row["payout_method"] = row["payout_method"] or ""
        assert rows == as_json
        payable = sum(Decimal(r["payable"]) for r in rows)
        to_pay = sum(Decimal(r["payable"]) for r in rows if r["eligible"] == "true")
        carried = sum(Decimal(r["carried"]) for r in rows)
        t = body["totals"]["USD"]
        assert payable == Decimal(t["payable"]) == Decimal(t["amount_to_pay"]) + carried
        assert to_pay == Decimal(t["amount_to_pay"])


async def test_bad_inputs_are_named(client, admin, finance, app):
    r = await client.get(
        "/v1/payouts/preview", params={"as_of": "2026-01-01T00:00:00"}, headers=finance
    )
    assert error_fields(r) == ["as_of"]
    r = await client.get("/v1/payouts/preview", params={"program_id": "nope"}, headers=finance)
    assert error_fields(r) == ["program_id"]
    r = await client.get("/v1/payouts/preview", params={"format": "xml"}, headers=finance)
    assert error_fields(r) == ["format"]
    r = await client.get(
        "/v1/payouts/preview",
        params={"program_id": "0190f4d6-0000-7000-8000-000000000000"},
        headers=finance,
    )
    assert_problem(r, 404)
    assert_problem(await client.get("/v1/payouts/preview"), 401)
    p = await create_partner(client, admin)
    partner = await make_key(app, "partner", partner_id=p["id"])
    assert_problem(await client.get("/v1/payouts/preview", headers=partner), 403)
