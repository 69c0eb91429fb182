"""Payout runs: exact locking, idempotency, concurrency, export, paid and failed."""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from decimal import Decimal

from service.kit.time import rfc3339, utc_now
from service.payouts.exports import RUN_COLUMNS
from tests.conftest import make_key
from tests.factories import create_partner
from tests.helpers import assert_problem, error_fields
from tests.payouts.factories import add_entry, ago, item_of, setup


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"run-{secrets.token_hex(8)}"}


async def start_run(client, finance, program_id, as_of=None, headers=None, status=201):
    body = {"as_of": rfc3339(as_of or ago(seconds=1)), "program_id": program_id}
    r = await client.post("/v1/payout-runs", json=body, headers={**finance, **(headers or key())})
    assert r.status_code == status, r.text
    return r.json()


async def payout(client, headers, payout_id):
    r = await client.get(f"/v1/payouts/{payout_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def preview(client, finance, program_id):
    r = await client.get("/v1/payouts/preview", params={"program_id": program_id}, headers=finance)
    assert r.status_code == 200, r.text
    return r.json()


async def test_run_locks_exactly_the_payable_entries(client, admin, finance, app):
    prog, (paid, small, negative) = await setup(client, admin, partners=3, min_payout="10.00")
    first = ago(days=9)
    await add_entry(app, paid["id"], prog["id"], 1500, available_at=first)
    await add_entry(app, paid["id"], prog["id"], -200, kind="reversal", available_at=ago(days=2))
    await add_entry(app, paid["id"], prog["id"], 999, available_at=ago(days=-3))  # pending
    await add_entry(app, paid["id"], prog["id"], 888, conversion_status="review")  # on hold
    await add_entry(app, small["id"], prog["id"], 999)
    await add_entry(app, negative["id"], prog["id"], -500, kind="reversal")
    before = await preview(client, finance, prog["id"])

    run = await start_run(client, finance, prog["id"])
    assert [p["partner_id"] for p in run["payouts"]] == [paid["id"]]
    (out,) = run["payouts"]
    assert (out["amount"], out["entry_count"], out["status"]) == ("13.00", 2, "open")
    assert out["period_start"] == rfc3339(first)
    assert run["totals"] == {"USD": {"amount": "13.00", "count": 1}}
    assert before["totals"]["USD"]["amount_to_pay"] == "13.00"

    detail = await payout(client, finance, out["id"])
    assert sorted(e["amount"] for e in detail["entries"]) == ["-2.00", "15.00"]
    assert detail["payout_method"] == "bank_transfer"
    after = await preview(client, finance, prog["id"])
    row = item_of(after, paid["id"])
    assert (row["payable"], row["pending"], row["on_hold"]) == ("0.00", "9.99", "8.88")
    assert item_of(after, small["id"])["carried"] == "9.99"
    assert item_of(after, negative["id"])["carried"] == "-5.00"
    # Nothing left to pay: a second run makes no payout.
    assert (await start_run(client, finance, prog["id"]))["payouts"] == []


async def test_negative_balance_is_netted_into_the_next_payout(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="10.00")
    await add_entry(app, p["id"], prog["id"], 5000)
    first = (await start_run(client, finance, prog["id"]))["payouts"][0]
    r = await client.post(
        f"/v1/payouts/{first['id']}/paid", json={"reference": "TX-1"}, headers=finance
    )
    assert r.status_code == 200, r.text
    await add_entry(app, p["id"], prog["id"], -3000, kind="reversal")  # clawback of a paid one
    assert (await start_run(client, finance, prog["id"]))["payouts"] == []
    assert item_of(await preview(client, finance, prog["id"]), p["id"])["carried"] == "-30.00"
    await add_entry(app, p["id"], prog["id"], 2500)
    assert (await start_run(client, finance, prog["id"]))["payouts"] == []  # -5.00, still carried
    await add_entry(app, p["id"], prog["id"], 2000)
    (netted,) = (await start_run(client, finance, prog["id"]))["payouts"]
    assert (netted["amount"], netted["entry_count"]) == ("15.00", 3)


async def test_idempotency_replay_and_conflict(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    await add_entry(app, p["id"], prog["id"], 700)
    as_of = ago(seconds=5)
    k = key()
    first = await start_run(client, finance, prog["id"], as_of, k)
    await add_entry(app, p["id"], prog["id"], 300)
    # The same instant written with another offset is the same request.
    body = {"as_of": as_of.astimezone().isoformat(), "program_id": prog["id"]}
    again = await client.post("/v1/payout-runs", json=body, headers={**finance, **k})
    assert again.status_code == 200 and again.json() == first
    other = {"as_of": rfc3339(ago(seconds=1)), "program_id": prog["id"]}
    r = await client.post("/v1/payout-runs", json=other, headers={**finance, **k})
    assert assert_problem(r, 409)["errors"][0]["field"] == "Idempotency-Key"
    got = await client.get(f"/v1/payout-runs/{first['id']}", headers=finance)
    assert got.json() == first


async def test_run_input_errors(client, admin, finance, app):
    prog, _ = await setup(client, admin)
    good = {"as_of": rfc3339(ago(seconds=1)), "program_id": prog["id"]}
    r = await client.post("/v1/payout-runs", json=good, headers=finance)
    assert error_fields(r) == ["Idempotency-Key"]
    r = await client.post(
        "/v1/payout-runs", json=good, headers={**finance, "Idempotency-Key": "x" * 201}
    )
    assert error_fields(r) == ["Idempotency-Key"]
    for body, field in (
        ({"program_id": prog["id"]}, "as_of"),
        ({"as_of": "2026-01-01T00:00:00"}, "as_of"),
        ({"as_of": rfc3339(ago(days=-1))}, "as_of"),
        ({"as_of": rfc3339(ago(seconds=1)), "program_id": "x"}, "program_id"),
        ({"as_of": rfc3339(ago(seconds=1)), "extra": 1}, "extra"),
    ):
        r = await client.post("/v1/payout-runs", json=body, headers={**finance, **key()})
        assert error_fields(r) == [field], body
    r = await client.post(
        "/v1/payout-runs",
        json={
            "as_of": rfc3339(ago(seconds=1)),
            "program_id": "0190f4d6-0000-7000-8000-000000000000",
        },
        headers={**finance, **key()},
    )
    assert_problem(r, 404)
    assert_problem(await client.get(f"/v1/payout-runs/{prog['id']}", headers=finance), 404)


async def test_concurrent_runs_lock_disjoint_entries(client, admin, finance, app):
    prog, partners = await setup(client, admin, partners=6, min_payout="1.00")
    for i, p in enumerate(partners):
        for j in range(5):
            await add_entry(app, p["id"], prog["id"], 100 * (i + 1) + j)
    expected = (await preview(client, finance, prog["id"]))["totals"]["USD"]
    runs = await asyncio.gather(*(start_run(client, finance, prog["id"]) for _ in range(3)))
    payouts = [p for run in runs for p in run["payouts"]]
    total = sum(Decimal(p["amount"]) for p in payouts)
    assert total == Decimal(expected["amount_to_pay"])
    assert len(payouts) == expected["eligible_count"] == 6
    entry_ids = []
    for p in payouts:
        entry_ids += [e["id"] for e in (await payout(client, finance, p["id"]))["entries"]]
    assert len(entry_ids) == len(set(entry_ids)) == 30


async def test_identical_concurrent_posts_make_one_run(client, admin, finance, app):
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    await add_entry(app, p["id"], prog["id"], 400)
    k, as_of = key(), ago(seconds=1)
    body = {"as_of": rfc3339(as_of), "program_id": prog["id"]}
    a, b = await asyncio.gather(
        *(client.post("/v1/payout-runs", json=body, headers={**finance, **k}) for _ in range(2))
    )
    assert sorted([a.status_code, b.status_code]) == [200, 201]
    assert a.json() == b.json() and len(a.json()["payouts"]) == 1


async def test_list_runs_and_export_csv(client, admin, finance, app):
    prog, partners = await setup(client, admin, partners=3, min_payout="0.00")
    await create_partner(client, admin)  # no entries: no row
    for i, p in enumerate(partners):
        await add_entry(app, p["id"], prog["id"], 1000 + i, available_at=ago(days=5 + i))
        await add_entry(app, p["id"], prog["id"], -1, kind="reversal")
    run = await start_run(client, finance, prog["id"])
    r = await client.get(f"/v1/payout-runs/{run['id']}/export.csv", headers=finance)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert next(csv.reader(io.StringIO(r.text))) == list(RUN_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [x["payout_id"] for x in rows] == [p["id"] for p in run["payouts"]]
    for row, p in zip(rows, run["payouts"], strict=True):
        assert (row["amount"], int(row["entry_count"])) == (p["amount"], p["entry_count"])
        assert row["period_start"] == p["period_start"] and row["payout_method"] == "bank_transfer"
        assert row["payout_details"] == '{"iban_last4":"1234"}'
    assert sum(Decimal(x["amount"]) for x in rows) == Decimal(run["totals"]["USD"]["amount"])

    seen, cursor = [], None
    while True:
        params = {"limit": 1, "program_id": prog["id"], **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/payout-runs", params=params, headers=finance)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [s["id"] for s in seen] == [run["id"]] and seen[0]["totals"] == run["totals"]


async def test_paid_and_failed_transitions(client, admin, finance, app):
    prog, (a, b) = await setup(client, admin, partners=2, min_payout="0.00")
    await add_entry(app, a["id"], prog["id"], 1000)
    await add_entry(app, b["id"], prog["id"], 2000)
    run = await start_run(client, finance, prog["id"])
    pa, pb = sorted(run["payouts"], key=lambda p: p["amount"])

    r = await client.post(f"/v1/payouts/{pa['id']}/paid", json={"reference": " "}, headers=finance)
    assert error_fields(r) == ["reference"]
    r = await client.post(
        f"/v1/payouts/{pa['id']}/paid",
        json={"reference": "x", "paid_at": "2026-01-01T00:00:00"},
        headers=finance,
    )
    assert error_fields(r) == ["paid_at"]
    paid_at = ago(hours=1)
    r = await client.post(
        f"/v1/payouts/{pa['id']}/paid",
        json={"reference": "TX-42", "paid_at": rfc3339(paid_at)},
        headers=finance,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["reference"]) == ("paid", "TX-42")
    assert r.json()["paid_at"] == rfc3339(paid_at)
    for action, body in (("paid", {"reference": "TX-43"}), ("failed", {"reason": "late"})):
        r = await client.post(f"/v1/payouts/{pa['id']}/{action}", json=body, headers=finance)
        assert_problem(r, 409)

    r = await client.post(f"/v1/payouts/{pb['id']}/failed", json={}, headers=finance)
    assert error_fields(r) == ["reason"]
    r = await client.post(
        f"/v1/payouts/{pb['id']}/failed", json={"reason": "IBAN closed"}, headers=finance
    )
    assert r.status_code == 200 and r.json()["status"] == "failed"
    assert (await payout(client, finance, pb["id"]))["entries"] == []
    for action, body in (("paid", {"reference": "TX-44"}), ("failed", {"reason": "again"})):
        r = await client.post(f"/v1/payouts/{pb['id']}/{action}", json=body, headers=finance)
        assert_problem(r, 409)
    # Released: the next run pays b again, in a new payout.
    assert item_of(await preview(client, finance, prog["id"]), b["id"])["payable"] == "20.00"
    (again,) = (await start_run(client, finance, prog["id"]))["payouts"]
    assert again["partner_id"] == b["id"] and again["id"] != pb["id"]
    assert again["amount"] == "20.00"

    missing = "0190f4d6-0000-7000-8000-000000000000"
    r = await client.post(f"/v1/payouts/{missing}/paid", json={"reference": "x"}, headers=finance)
    assert_problem(r, 404)

    audit = await _audit_actions(app, pa["id"], pb["id"])
    assert audit == {"payout.paid", "payout.failed"}


async def _audit_actions(app, *ids):
    from sqlalchemy import select

    from service.models import AuditEvent

    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEvent.action).where(AuditEvent.object_id.in_(list(ids)))
        )
        return set(rows)


async def test_partners_see_their_own_payouts_only(client, admin, finance, app):
    prog, (a, b) = await setup(client, admin, partners=2, min_payout="0.00")
    await add_entry(app, a["id"], prog["id"], 1000)
    await add_entry(app, b["id"], prog["id"], 2000)
    run = await start_run(client, finance, prog["id"])
    mine = next(p for p in run["payouts"] if p["partner_id"] == a["id"])
    theirs = next(p for p in run["payouts"] if p["partner_id"] == b["id"])
    key_a = await make_key(app, "partner", partner_id=a["id"])

    detail = await payout(client, key_a, mine["id"])
    assert detail["amount"] == "10.00" and len(detail["entries"]) == 1
    assert_problem(await client.get(f"/v1/payouts/{theirs['id']}", headers=key_a), 404)
    listed = (await client.get("/v1/payouts", headers=key_a)).json()["items"]
    assert {p["partner_id"] for p in listed} == {a["id"]}
    r = await client.get("/v1/payouts", params={"partner_id": b["id"]}, headers=key_a)
    assert r.json()["items"] == []
    for path in (f"/v1/payout-runs/{run['id']}", "/v1/ledger/reconciliation"):
        assert_problem(await client.get(path, headers=key_a), 403)
    r = await client.post(f"/v1/payouts/{mine['id']}/paid", json={"reference": "x"}, headers=key_a)
    assert_problem(r, 403)

    r = await client.get(
        "/v1/payouts", params={"run_id": run["id"], "status": "open"}, headers=finance
    )
    assert {p["id"] for p in r.json()["items"]} == {mine["id"], theirs["id"]}


async def test_paid_report_for_a_period(client, admin, finance, app):
    prog, (a, b) = await setup(client, admin, partners=2, min_payout="0.00")
    start = utc_now().replace(microsecond=0)
    refs = []
    for i, amount in enumerate((1000, 250)):
        await add_entry(app, a["id"], prog["id"], amount)
        await add_entry(app, b["id"], prog["id"], 5)
        run = await start_run(client, finance, prog["id"])
        for p in run["payouts"]:
            if p["partner_id"] == a["id"]:
                ref = f"TX-A{i}"
                refs.append(ref)
                r = await client.post(
                    f"/v1/payouts/{p['id']}/paid", json={"reference": ref}, headers=finance
                )
                assert r.status_code == 200
    end = utc_now()
    params = {"from": rfc3339(start), "to": rfc3339(end)}
    body = (await client.get("/v1/payouts/report", params=params, headers=finance)).json()
    (row,) = [i for i in body["items"] if i["partner_id"] == a["id"]]
    assert (row["amount"], row["payout_count"], row["references"]) == ("12.50", 2, refs)
    assert not [i for i in body["items"] if i["partner_id"] == b["id"]]  # open, not paid
    assert body["from"] == rfc3339(start)

    r = await client.get("/v1/payouts/report", params={**params, "format": "csv"}, headers=finance)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["partner_id"], x["amount"], x["references"]) for x in rows] == [
        (i["partner_id"], i["amount"], " | ".join(i["references"])) for i in body["items"]
    ]
    total = sum(Decimal(x["amount"]) for x in rows if x["currency"] == "USD")
    assert total == Decimal(body["totals"]["USD"]["amount"])
    for bad, field in (
        ({"from": rfc3339(end), "to": rfc3339(end)}, "to"),
        ({"from": "2026-01-01T00:00:00", "to": rfc3339(end)}, "from"),
    ):
        r = await client.get("/v1/payouts/report", params=bad, headers=finance)
        assert error_fields(r) == [field]


async def test_a_run_answers_as_it_is_read_back_later(client, admin, finance, app):
    # The answer is built from what the locking statement returned; a later GET reads the
    # stored payouts. Both must agree: payouts, their order, amounts, periods and totals.
    prog, partners = await setup(client, admin, partners=4, min_payout="5.00")
    for partner, amounts in zip(partners, ([700, 250], [300], [900], []), strict=True):
        for amount in amounts:
            await add_entry(app, partner["id"], prog["id"], amount)
    run = await start_run(client, finance, prog["id"])
    got = await client.get(f"/v1/payout-runs/{run['id']}", headers=finance)
    assert got.status_code == 200 and got.json() == run
    paid = {p["partner_id"]: (p["amount"], p["entry_count"]) for p in run["payouts"]}
    # Under the minimum (3.00 < 5.00) and nothing at all: no payout for either.
    assert paid == {partners[0]["id"]: ("9.50", 2), partners[2]["id"]: ("9.00", 1)}
    assert run["totals"] == {"USD": {"amount": "18.50", "count": 2}}
