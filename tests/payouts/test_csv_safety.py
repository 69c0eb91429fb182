"""Every CSV export is safe to open in a spreadsheet: hostile text never becomes a formula,
while the amounts stay numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from service.kit import csvout
from service.kit.time import rfc3339, utc_now
from tests.factories import create_partner, create_program
from tests.payouts.factories import add_entry

HOSTILE = {
    '=HYPERLINK("http://evil.example","x")': '\'=HYPERLINK("http://evil.example","x")',
    " =1+1": "' =1+1",
    "+1+1": "'+1+1",
    "-2+3": "'-2+3",
    "@SUM(A1)": "'@SUM(A1)",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
    "Plain Partner": "Plain Partner",
}


def test_text_cells_are_escaped_and_numbers_are_not():
    for raw, cell in HOSTILE.items():
        assert csvout.text_cell(raw) == cell
    # A numeric column keeps negative amounts as numbers, but never lets text through.
    assert csvout.number_cell(Decimal("-12.34")) == "-12.34"
    assert csvout.number_cell("-12.34") == "-12.34"
    assert csvout.number_cell(-3) == "-3"
    assert csvout.number_cell("-1+1") == "'-1+1"
    assert csvout.number_cell("=1+1") == "'=1+1"


def test_every_cell_is_quoted_so_a_semicolon_reader_keeps_it_whole():
    text = csvout.render(["name", "amount"], [[";=1+1", Decimal("-1.00")]], frozenset({"amount"}))
    assert text == '"name","amount"\r\n";=1+1","-1.00"\r\n'
    # Read as a ';'-separated file (a spreadsheet in such a locale), the cell is still one.
    (_, row) = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert not any(cell.lstrip().startswith("=") for cell in row)


async def _hostile_world(client, admin, finance, app):
    prog = await create_program(client, admin, min_payout="0.00")
    partners = []
    for name in HOSTILE:
        p = await create_partner(client, admin, name=name)
        partners.append(p)
        await add_entry(app, p["id"], prog["id"], 1000)
        await add_entry(app, p["id"], prog["id"], -2500, kind="reversal")
        await add_entry(app, p["id"], prog["id"], 500)
    return prog, partners


async def test_payout_exports_escape_hostile_names_and_references(client, admin, finance, app):
    start = utc_now().replace(microsecond=0)
    prog, partners = await _hostile_world(client, admin, finance, app)
    # Balances are negative (carried): the preview shows them as plain negative numbers.
    r = await client.get(
        "/v1/payouts/preview", params={"program_id": prog["id"], "format": "csv"}, headers=finance
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    names = {row["partner_id"]: row["partner_name"] for row in rows}
    for p in partners:
        assert names[p["id"]] == HOSTILE[p["name"]]
    assert {row["payable"] for row in rows if row["partner_id"] in names} == {"-10.00"}

    # Positive balances, a run, and payouts marked paid under hostile references.
    for p in partners:
        await add_entry(app, p["id"], prog["id"], 5000)
    r = await client.post(
        "/v1/payout-runs",
        json={"as_of": rfc3339(utc_now()), "program_id": prog["id"]},
        headers={**finance, "Idempotency-Key": f"csv-{prog['id']}"},
    )
    assert r.status_code == 201, r.text
    run = r.json()
    r = await client.get(f"/v1/payout-runs/{run['id']}/export.csv", headers=finance)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["partner_name"] for row in rows} == set(HOSTILE.values())
    for row in rows:
        assert row["amount"] == "40.00"
    for p in run["payouts"]:
        r = await client.post(
            f"/v1/payouts/{p['id']}/paid", json={"reference": "=1+1"}, headers=finance
        )
        assert r.status_code == 200, r.text

    params = {"from": rfc3339(start), "to": rfc3339(utc_now()), "format": "csv"}
    r = await client.get("/v1/payouts/report", params=params, headers=finance)
    rows = [
        row
        for row in csv.DictReader(io.StringIO(r.text))
        if row["partner_id"] in {p["id"] for p in partners}
    ]
    assert len(rows) == len(partners)
    for row in rows:
        assert row["references"] == "'=1+1"
        assert row["partner_name"] in HOSTILE.values()
        for cell in row.values():
            assert cell.lstrip()[:1] not in ("=", "+", "-", "@", "\t", "\r")
