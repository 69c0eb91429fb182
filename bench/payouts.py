"""Payout benchmark: 1,000,000 ledger entries over 10,000 partners, then a preview and a
run through the HTTP API (uvicorn in a subprocess on 127.0.0.1).

    .venv/bin/python bench/payouts.py [--entries 1000000] [--partners 10000]

By default the ledger looks like one run monthly: entries available before the last
month were paid by an earlier run, the rest is unpaid (about a month payable, a month
pending). --backlog leaves every entry unpaid: the first run over a year-long ledger.

Uses an embedded PostgreSQL in a temporary directory, or the server named by
DATABASE_URL (a fresh database is created on it and dropped afterwards).
Goals: preview <= 1 s; the monthly run <= 1 s, the first run over a backlog <= 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import secrets
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Server, bench_database  # noqa: E402

from service import migrate  # noqa: E402
from service.db import to_async_url  # noqa: E402
from service.kit.ids import new_id  # noqa: E402

PREVIEW_GOAL = 1.0
RUN_GOAL = 1.0
BACKLOG_RUN_GOAL = 5.0
PROGRAMS = 10
REVIEW_SHARE = 0.01
REVERSAL_SHARE = 0.10


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def seed(url: str, n_entries: int, n_partners: int, now: datetime, *, backlog: bool) -> None:
    """Programs, partners, conversions and ledger entries, all with COPY."""
    rng = random.Random(42)
    conn = await asyncpg.connect(plain(url))
    try:
        programs = [new_id() for _ in range(PROGRAMS)]
        await conn.copy_records_to_table(
            "programs",
            columns=[
                "id",
                "name",
                "currency",
                "time_zone",
                "default_url",
                "allowed_domains",
                "click_param",
                "attribution_window_days",
                "attribution_order",
                "hold_days",
                "min_payout_minor",
            ],
            records=[
                (
                    pid,
                    f"Program {i}",
                    "EUR" if i == 0 else "USD",
                    "UTC",
                    "https://shop.example/",
                    ["shop.example"],
                    "aff_click_id",
                    30,
                    ["promo_code", "click", "customer"],
                    30,
                    5000,
                )
                for i, pid in enumerate(programs)
            ],
        )
        partners = [new_id() for _ in range(n_partners)]
        await conn.copy_records_to_table(
            "partners",
            columns=[
                "id",
                "name",
                "email",
                "status",
                "payout_method",
                "payout_details",
                "metadata",
            ],
            records=[
                (
                    pid,
                    f"Partner {i:05d}",
                    f"partner{i}@bench.example",
                    "active",
                    "bank_transfer",
                    f'{{"iban_last4": "{i % 10_000:04d}"}}',
                    "{}",
                )
                for i, pid in enumerate(partners)
            ],
        )

        per_partner = n_entries // n_partners
        # Everything available before the cutoff was paid by an earlier run, as in a
        # ledger with monthly runs; with backlog=True nothing was ever paid.
        cutoff = now - timedelta(days=31)
        history_run = new_id()
        history: dict[tuple[uuid.UUID, str], list] = {}
        conversions: list[tuple] = []
        entries: list[tuple] = []
        links: list[tuple[uuid.UUID, uuid.UUID]] = []
        for i, partner in enumerate(partners):
            program = programs[i % PROGRAMS]
            currency = "EUR" if i % PROGRAMS == 0 else "USD"
            # One partner in seven earns cents: under the minimum, carried.
            small = i % 7 == 0
            own: list[uuid.UUID] = []
            for j in range(per_partner):
                available = now - timedelta(days=rng.uniform(-30, 365))
                if own and j >= per_partner * (1 - REVERSAL_SHARE):
                    conv = rng.choice(own)
                    amount, kind = -rng.randint(1, 5 if small else 5000), "reversal"
                else:
                    conv = new_id()
                    own.append(conv)
                    status = "review" if rng.random() < REVIEW_SHARE else "accepted"
                    if not backlog and available <= cutoff:
                        status = "accepted"
                    conversions.append(
                        (
                            conv,
                            program,
                            "sale",
                            f"o-{conv.hex}",
                            status,
                            100_000,
                            currency,
                            100_000,
                            currency,
                            0,
                            available - timedelta(days=30),
                            "[]",
                            "{}",
                            partner,
                            "{}",
                            hashlib.sha256(conv.bytes).digest(),
                        )
                    )
                    amount, kind = rng.randint(1, 5 if small else 20000), "commission"
                payout_id = None
                if not backlog and available <= cutoff:
                    slot = history.setdefault(
                        (partner, currency), [new_id(), 0, 0, available, available]
                    )
                    payout_id = slot[0]
                    slot[1] += amount
                    slot[2] += 1
                    slot[3], slot[4] = min(slot[3], available), max(slot[4], available)
                entry_id = new_id()
                if payout_id is not None:
                    links.append((entry_id, payout_id))
                entries.append(
                    (
                        entry_id,
                        partner,
                        program,
                        conv,
                        kind,
                        amount,
                        currency,
                        available,
                        available.date().replace(day=1),
                        "{}",
                    )
                )
        if history:
            await conn.copy_records_to_table(
                "payout_runs",
                columns=["id", "idempotency_key", "request_hash", "as_of"],
                records=[(history_run, "bench-history", b"\0" * 32, cutoff)],
            )
            await conn.copy_records_to_table(
                "payouts",
                columns=[
                    "id",
                    "run_id",
                    "partner_id",
                    "currency",
                    "amount_minor",
                    "entry_count",
                    "status",
                    "period_start",
                    "period_end",
                    "payout_method",
                    "payout_details",
                    "reference",
                    "paid_at",
                ],
                records=[
                    (
                        pid,
                        history_run,
                        partner,
                        currency,
                        amount,
                        count,
                        "paid",
                        first,
                        last,
                        "bank_transfer",
                        "{}",
                        f"HIST-{pid.hex[:8]}",
                        cutoff,
                    )
                    for (partner, currency), (pid, amount, count, first, last) in history.items()
                ],
            )
        # fmt: off
        await conn.copy_records_to_table(
            "conversions",
            columns=[
                "id", "program_id", "type", "order_id", "status", "amount_minor", "currency",
                "program_amount_minor", "program_currency", "refunded_minor", "occurred_at",
                "items", "metadata", "partner_id", "attribution", "request_hash",
            ],
            records=conversions,
        )
        await conn.copy_records_to_table(
            "commission_entries",
            columns=[
                "id", "partner_id", "program_id", "conversion_id", "kind", "amount_minor",
                "currency", "available_at", "period_month", "explain",
            ],
            records=entries,
        )
        await conn.copy_records_to_table(
            "payout_entries", columns=["entry_id", "payout_id"], records=links
        )
        # fmt: on
        # The paid history went in behind the service's back: its entries leave
        # unpaid_entries (where the ledger's trigger put them), as its run would have taken them.
        await conn.execute(
            "DELETE FROM unpaid_entries u USING payout_entries l WHERE l.entry_id = u.entry_id"
        )
        # What autovacuum would do after a bulk load; the planner needs the statistics.
        await conn.execute(
            "VACUUM ANALYZE programs, partners, conversions, commission_entries, payouts,"
            " payout_entries, unpaid_entries"
        )
    finally:
        await conn.close()


async def finance_key(url: str) -> str:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from service.auth.keys import create_key
    from service.models import Role

    engine = create_async_engine(to_async_url(url))
    try:
        async with AsyncSession(engine) as session:
            _, key = await create_key(session, Role.finance, name="bench")
            await session.commit()
    finally:
        await engine.dispose()
    return key


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


async def count_locked(url: str, run_id: str) -> int:
    conn = await asyncpg.connect(plain(url))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM payout_entries l JOIN payouts p ON p.id = l.payout_id"
                " WHERE p.run_id = $1",
                uuid.UUID(run_id),
            )
        )
    finally:
        await conn.close()


async def count_unpaid(url: str) -> int:
    conn = await asyncpg.connect(plain(url))
    try:
        sql = (
            "SELECT count(*) FROM commission_entries e"
            " WHERE NOT EXISTS (SELECT FROM payout_entries l WHERE l.entry_id = e.id)"
        )
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def bench(url: str, n_entries: int, n_partners: int, backlog: bool) -> bool:
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    migrate.upgrade(to_async_url(url))
    asyncio.run(seed(url, n_entries, n_partners, now, backlog=backlog))
    unpaid = asyncio.run(count_unpaid(url))
    scenario = "backlog: nothing paid yet" if backlog else "monthly: earlier months paid"
    print(
        f"seed: {time.perf_counter() - t0:.1f} s ({n_partners} partners, {n_entries} entries,"
        f" {unpaid} unpaid; {scenario}; COPY)"
    )
    key = asyncio.run(finance_key(url))
    headers = {"Authorization": f"Bearer {key}"}

    server = Server(database_url=url, extra_env={"AFFILIATE_MIGRATE": "0"})
    try:
        base = server.start()
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            as_of = datetime.now(UTC).isoformat()
            times = []
            body: dict = {}
            for _ in range(3):
                elapsed, r = timed(
                    lambda: client.get("/v1/payouts/preview", params={"as_of": as_of})
                )
                assert r.status_code == 200, r.text
                times.append(elapsed)
                body = r.json()
            preview = statistics.median(times)
            print(
                f"preview: {preview:.2f} s ({len(body['items'])} partner rows, {n_entries} entries;"
                f" runs {', '.join(f'{t:.2f}' for t in times)} s)"
            )
            csv_time, r = timed(
                lambda: client.get("/v1/payouts/preview", params={"as_of": as_of, "format": "csv"})
            )
            assert r.status_code == 200
            print(f"preview csv: {csv_time:.2f} s ({len(r.content) // 1024} KiB)")

            run_time, r = timed(
                lambda: client.post(
                    "/v1/payout-runs",
                    json={"as_of": as_of},
                    headers={"Idempotency-Key": f"bench-{secrets.token_hex(6)}"},
                )
            )
            assert r.status_code == 201, r.text
            run = r.json()
            locked = asyncio.run(count_locked(url, run["id"]))
            expected = sum(t["eligible_count"] for t in body["totals"].values())
            print(
                f"run: {run_time:.2f} s ({len(run['payouts'])} payouts, {locked} entries locked;"
                f" preview said {expected} eligible)"
            )
            rec_time, r = timed(lambda: client.get("/v1/ledger/reconciliation"))
            print(f"reconciliation: {rec_time:.2f} s (balanced: {r.json()['balanced']})")
    finally:
        server.stop()
    run_goal = BACKLOG_RUN_GOAL if backlog else RUN_GOAL
    ok = preview <= PREVIEW_GOAL and run_time <= run_goal
    print(
        f"goals: preview <= {PREVIEW_GOAL:.0f} s {'met' if preview <= PREVIEW_GOAL else 'MISSED'},"
        f" {'backlog' if backlog else 'monthly'} run <= {run_goal:.0f} s"
        f" {'met' if run_time <= run_goal else 'MISSED'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--partners", type=int, default=10_000)
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="no earlier runs: every entry is unpaid (a first run over a year of ledger)",
    )
    args = parser.parse_args()

    with bench_database("payouts") as url:
        ok = bench(url, args.entries, args.partners, args.backlog)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
