"""Conversions per second through the real HTTP API, with attribution and commission.

One server worker on an embedded PostgreSQL (or DATABASE_URL); a bounded async load
from this process on 127.0.0.1, spread over many partners' clicks, then all on one
partner (whose sales serialise on their month's lock, by design). Prints throughput
and p50/p99 of each.

    python bench/conversions.py [--seconds 15] [--concurrency 32] [--partners 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Server, percentile

GOAL = 1500.0
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
TERMS = {
    "rules": [
        {
            "event": "sale",
            "type": "percent",
            "tiers": [{"from": "0", "percent": "10"}, {"from": "100000.00", "percent": "15"}],
        }
    ],
    "parent_override_percent": "5",
    "hold_days": 30,
}


async def seed(
    base: str, admin: dict[str, str], partners: int, clicks_each: int
) -> tuple[str, list[list[str]], dict[str, str]]:
    """A program, `partners` partners under one parent, each with an agreement, a link and clicks."""
    async with httpx.AsyncClient(base_url=base, headers=admin, timeout=30) as c:
        program = (
            await c.post(
                "/v1/programs",
                json={
                    "name": "Bench shop",
                    "currency": "USD",
                    "default_url": "https://shop.example/",
                    "min_payout": "10.00",
                },
            )
        ).json()
        parent = (
            await c.post("/v1/partners", json={"name": "Network", "email": "net@bench.example"})
        ).json()
        merchant = (
            await c.post("/v1/api-keys", json={"role": "merchant", "program_ids": [program["id"]]})
        ).json()["key"]
        sem = asyncio.Semaphore(32)

        async def one_partner(i: int) -> list[str]:
            partner = (
                await c.post(
                    "/v1/partners",
                    json={
                        "name": f"Blog {i}",
                        "email": f"blog{i}@bench.example",
                        "parent_id": parent["id"],
                    },
                )
            ).json()
            r = await c.post(
                f"/v1/partners/{partner['id']}/agreements",
                json={"program_id": program["id"], "terms": TERMS},
            )
            assert r.status_code == 201, r.text
            link = (
                await c.post(
                    "/v1/links", json={"program_id": program["id"], "partner_id": partner["id"]}
                )
            ).json()
            tokens = []
            for n in range(clicks_each):
                async with sem:
                    r = await c.get(
                        f"/r/{link['code']}",
                        headers={"user-agent": BROWSER, "x-bench": f"{i}-{n}"},
                        follow_redirects=False,
                    )
                tokens.append(parse_qs(urlsplit(r.headers["location"]).query)["aff_click_id"][0])
            return tokens

        per_partner = await asyncio.gather(*(one_partner(i) for i in range(partners)))
        return program["id"], list(per_partner), {"Authorization": f"Bearer {merchant}"}


async def load(
    base: str,
    program_id: str,
    tokens: list[str],
    merchant: dict[str, str],
    seconds: float,
    concurrency: int,
) -> tuple[list[float], int, int, Decimal]:
    run_id = random.getrandbits(48)
    latencies: list[float] = []
    errors = 0
    revenue = Decimal(0)
    counter = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, headers=merchant, timeout=30, limits=limits) as c:

        async def worker(w: int) -> None:
            nonlocal errors, revenue, counter
            rng = random.Random(w)
            while time.perf_counter() < stop_at:
                counter += 1
                amount = Decimal(rng.randint(500, 50_000)) / 100
                body = {
                    "program_id": program_id,
                    "type": "sale",
                    "order_id": f"bench-{run_id}-{w}-{counter}",
                    "amount": f"{amount:.2f}",
                    "click_id": rng.choice(rng.choice(tokens)),
                    "occurred_at": datetime.now(UTC).isoformat(),
                }
                t0 = time.perf_counter()
                r = await c.post("/v1/conversions", json=body)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 201 or not r.json()["commissions"]:
                    errors += 1
                    if errors <= 3:
                        print(f"error {r.status_code}: {r.text[:300]}", file=sys.stderr)
                else:
                    revenue += amount

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return latencies, counter, errors, revenue


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--partners", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    server = Server(database_url=args.database_url)
    try:
        admin_key = server.admin_key()
        base = server.start()
        admin = {"Authorization": f"Bearer {admin_key}"}
        program_id, tokens, merchant = await seed(base, admin, args.partners, 40)
        await load(base, program_id, tokens, merchant, 2.0, args.concurrency)  # warm-up
        rate = 0.0
        for label, pool in (
            (f"{args.partners} partners", tokens),
            ("1 partner (every sale waits on one partner-month lock)", tokens[:1]),
        ):
            t0 = time.perf_counter()
            latencies, _sent, errors, _ = await load(
                base, program_id, pool, merchant, args.seconds, args.concurrency
            )
            elapsed = time.perf_counter() - t0
            latencies.sort()
            done = len(latencies)
            print(
                f"conversions, {label}: {done} in {elapsed:.1f} s = {done / elapsed:.0f}/s "
                f"(1 worker, concurrency {args.concurrency}); p50 "
                f"{percentile(latencies, 0.5) * 1000:.1f} ms, p99 "
                f"{percentile(latencies, 0.99) * 1000:.1f} ms; errors {errors}"
            )
            rate = rate or done / elapsed
        print(f"goal >= {GOAL:.0f}/s (spread over partners): {'met' if rate >= GOAL else 'missed'}")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
