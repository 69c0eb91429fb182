"""GET /v1/ledger/reconciliation: sum(entries) = paid + open + unpaid, at every step."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from service.kit.money import format_minor
from service.kit.time import rfc3339
from service.models import PayoutEntry
from tests.helpers import assert_problem
from tests.payouts.factories import add_entry, ago, setup

MIN_PAYOUT = 1000  # minor units; the program's min_payout "10.00"


async def reconcile(client, finance, program_id=None):
    params = {"program_id": program_id} if program_id else {}
    r = await client.get("/v1/ledger/reconciliation", params=params, headers=finance)
    assert r.status_code == 200, r.text
    return r.json()


@dataclass
class Model:
    """What the ledger should hold: each entry's amount and the payout it is in."""

    entries: dict[int, list[list]] = field(default_factory=dict)  # partner -> [[amount, payout]]
    status: dict[str, str] = field(default_factory=dict)  # payout id -> status

    def run(self, payouts: dict[int, str]) -> None:
        for p, payout_id in payouts.items():
            for e in self.entries[p]:
                if e[1] is None:
                    e[1] = payout_id
            self.status[payout_id] = "open"

    def due(self) -> set[int]:
        out = set()
        for p, rows in self.entries.items():
            balance = sum(a for a, payout in rows if payout is None)
            if balance > 0 and balance >= MIN_PAYOUT:
                out.add(p)
        return out

    def fail(self, payout_id: str) -> None:
        self.status[payout_id] = "failed"
        for rows in self.entries.values():
            for e in rows:
                if e[1] == payout_id:
                    e[1] = None

    def sums(self, p: int) -> tuple[int, int, int, int]:
        rows = self.entries[p]
        total = sum(a for a, _ in rows)
        paid = sum(a for a, x in rows if x and self.status[x] == "paid")
        open_ = sum(a for a, x in rows if x and self.status[x] == "open")
        unpaid = sum(a for a, x in rows if x is None)
        return total, paid, open_, unpaid


# Every ledger this module writes. The database is the module's own, so the reconciliation
# without a program filter must add up to exactly these: nothing another module left.
BOOKS: list[Model] = []
COLUMNS = ("entries_total", "paid", "open", "unpaid")


def books_totals() -> dict[str, dict[str, str]]:
    """What the unfiltered reconciliation's totals must be: the sums of BOOKS, in USD."""
    sums = [m.sums(p) for m in BOOKS for p, rows in m.entries.items() if rows]
    if not sums:
        return {}
    columns = zip(COLUMNS, zip(*sums, strict=True), strict=True)
    return {"USD": {c: format_minor(sum(col), "USD") for c, col in columns}}


def totals_of(body: dict) -> dict[str, dict[str, str]]:
    return {cur: {c: t[c] for c in COLUMNS} for cur, t in body["totals"].items()}


steps = st.lists(
    st.one_of(
        st.tuples(st.just("commission"), st.integers(0, 1), st.integers(1, 3000)),
        st.tuples(st.just("refund"), st.integers(0, 1), st.integers(1, 3000)),
        st.tuples(st.just("run"), st.just(0), st.just(0)),
        st.tuples(st.sampled_from(["paid", "failed"]), st.integers(0, 1), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
async def test_reconciliation_holds_after_any_sequence(client, admin, finance, app, plan):
    prog, partners = await setup(client, admin, partners=2, min_payout="10.00")
    ids = [p["id"] for p in partners]
    model = Model(entries={0: [], 1: []})
    BOOKS.append(model)
    opened: list[str] = []
    for action, who, n in plan:
        if action in ("commission", "refund"):
            amount = n if action == "commission" else -n
            kind = "commission" if action == "commission" else "reversal"
            await add_entry(app, ids[who], prog["id"], amount, kind=kind)
            model.entries[who].append([amount, None])
        elif action == "run":
            due = model.due()
            r = await client.post(
                "/v1/payout-runs",
                json={"as_of": rfc3339(ago(seconds=0)), "program_id": prog["id"]},
                headers={**finance, "Idempotency-Key": secrets.token_hex(8)},
            )
            assert r.status_code == 201, r.text
            got = {ids.index(p["partner_id"]): p["id"] for p in r.json()["payouts"]}
            assert set(got) == due
            model.run(got)
            opened += got.values()
        elif opened:
            payout_id = opened[n % len(opened)]
            body = {"reference": "TX"} if action == "paid" else {"reason": "bounced"}
            r = await client.post(f"/v1/payouts/{payout_id}/{action}", json=body, headers=finance)
            if model.status[payout_id] == "open":
                assert r.status_code == 200, r.text
                if action == "paid":
                    model.status[payout_id] = "paid"
                else:
                    model.fail(payout_id)
            else:
                assert_problem(r, 409)

        for scope in (prog["id"], None):
            body = await reconcile(client, finance, scope)
            assert body["balanced"] and body["mismatches"] == [], body
        assert totals_of(body) == books_totals()
        rows = {i["partner_id"]: i for i in (await reconcile(client, finance, prog["id"]))["items"]}
        for who, pid in enumerate(ids):
            if not model.entries[who]:
                assert pid not in rows
                continue
            row = rows[pid]
            expected = tuple(format_minor(v, "USD") for v in model.sums(who))
            assert (row["entries_total"], row["paid"], row["open"], row["unpaid"]) == expected
            assert row["balanced"]


async def one_entry_in_a_payout(client, admin, finance, app):
    """A new program and partner, one entry of 15.00 and the open payout a run put it in
    (noted in BOOKS): the program, the entry and the payout."""
    prog, (p,) = await setup(client, admin, min_payout="0.00")
    entry = await add_entry(app, p["id"], prog["id"], 1500)
    r = await client.post(
        "/v1/payout-runs",
        json={"as_of": rfc3339(ago(seconds=0)), "program_id": prog["id"]},
        headers={**finance, "Idempotency-Key": secrets.token_hex(8)},
    )
    (payout,) = r.json()["payouts"]
    BOOKS.append(Model(entries={0: [[1500, payout["id"]]]}, status={payout["id"]: "open"}))
    return prog, entry, payout


async def test_a_tampered_ledger_is_flagged(client, admin, finance, app):
    prog, entry, payout = await one_entry_in_a_payout(client, admin, finance, app)
    body = await reconcile(client, finance, prog["id"])
    assert body["balanced"]
    assert body["totals"]["USD"]["open"] == "15.00"
    # An entry slipped out of its payout behind the service's back.
    async with app.state.sessionmaker() as session:
        await session.delete(await session.get(PayoutEntry, (uuid.UUID(payout["id"]), entry.id)))
        await session.commit()
    for scope in (prog["id"], None):
        body = await reconcile(client, finance, scope)
        assert not body["balanced"]
        (m,) = [m for m in body["mismatches"] if m["payout_id"] == payout["id"]]
        assert (m["amount"], m["entries_total"]) == ("15.00", "0.00")
    # Put it back: the module's other tests reconcile the whole database.
    async with app.state.sessionmaker() as session:
        session.add(PayoutEntry(entry_id=entry.id, payout_id=uuid.UUID(payout["id"])))
        await session.commit()
    body = await reconcile(client, finance)
    assert body["balanced"] and totals_of(body) == books_totals()


async def test_a_payout_of_no_run_or_no_partner_is_flagged(client, admin, finance, app):
    # payouts.run_id and partner_id have no foreign keys (migration 0804): the
    # reconciliation is what says a payout points nowhere.
    _, _, payout = await one_entry_in_a_payout(client, admin, finance, app)
    assert (await reconcile(client, finance))["balanced"]
    change = text("UPDATE payouts SET run_id = :run, partner_id = :partner WHERE id = :id")
    run_id = (await client.get(f"/v1/payouts/{payout['id']}", headers=finance)).json()["run_id"]

    async def point(run: str, partner: str) -> None:
        async with app.state.sessionmaker() as session:
            await session.execute(change, {"run": run, "partner": partner, "id": payout["id"]})
            await session.commit()

    partner_id = payout["partner_id"]
    await point(str(uuid.uuid4()), partner_id)
    body = await reconcile(client, finance)
    assert not body["balanced"]
    (m,) = [m for m in body["mismatches"] if m["payout_id"] == payout["id"]]
    assert (m["amount"], m["entries_total"]) == ("15.00", "15.00")

    nobody = str(uuid.uuid4())
    await point(run_id, nobody)
    body = await reconcile(client, finance)
    assert not body["balanced"]
    (item,) = [i for i in body["items"] if i["partner_id"] == nobody]
    assert (item["entries_total"], item["open"], item["balanced"]) == ("0.00", "15.00", False)

    # Put it back: the module's other tests reconcile the whole database.
    await point(run_id, partner_id)
    body = await reconcile(client, finance)
    assert body["balanced"] and totals_of(body) == books_totals()
