"""Conversions per second: the service through its API against the floor, in one run.

    python bench/conversions.py [--seconds 5] [--rounds 7] [--concurrency 32] [--partners 50]
                                [--workers 2]

- floor: the statements one conversion needs, as the service issues them (read link and
  partner; lock the month's totals, read the agreements and the click's fraud facts in one
  statement; insert the conversion with its audit row, the partner's and the
  parent's entries and the month's new totals, and read the event subscriptions' version;
  the program comes from the service's cache), in one transaction each,
  through bare asyncpg: concurrency 32 over one pool of 10. It writes the JSON the service stored for one of its
  warm-up sales, so the rows are the size of the service's.
- service: `python -m service serve --workers N` on 127.0.0.1, N by default the Docker image's
  (its `WORKERS`, 2: the service as it is deployed, where the floor uses the whole machine
  too), with the floor's 10 connections shared among its workers
  (AFFILIATE_DB_POOL_SIZE=10/N), loaded by wrk
  with a Lua script that makes a unique order id per request and picks one of the
  seeded partners' click ids; wrk costs little CPU, unlike a Python client in this process.

Both run on the same database, seeded through the API (a program, `--partners` partners
under one parent, an agreement with tiers and a parent override each, a link and 40
clicks each, every click from another visitor). They take turns, `--rounds` times `--seconds` each, so that both are measured
at the machine's speed of the moment; the ratio is the median of the rounds' ratios. After
each round the bench checks that every 201 stored its conversion with entries. Uses an
embedded PostgreSQL, or a fresh database on the server named by DATABASE_URL (dropped
afterwards). Prints each round's rates and ratio, then both rates over all rounds, p50/p99,
CPU per conversion (each side's process or processes; the whole database server, and each
side's own backends) and the median ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _harness import (
    DatabaseCpu,
    Server,
    bench_database,
    percentile,
    process_seconds,
    seconds_if_running,
)

from service.fraud.rules import counted
from service.fraud.schemas import Rules
from service.redirect.runtime import nothing_to_reset
from service.tracking.partitions import spanned

GOAL_RATIO = 0.5
POOL = 10
FLOOR_APPLICATION = "bench-conversions-floor"


def image_workers() -> int:
    """The uvicorn workers the Docker image runs: its WORKERS variable's default."""
    dockerfile = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text()
    found = re.search(r"--workers \$\{WORKERS:-(\d+)\}", dockerfile)
    if found is None:
        raise SystemExit("the Dockerfile names no default for WORKERS")
    return int(found.group(1))


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


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def seed(
    base: str, admin: dict[str, str], partners: int, clicks_each: int
) -> tuple[str, list[list[str]], str]:
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
                # Each click another visitor (the visitor is the address and the user agent),
                # as on a real link: one visitor's thousands of clicks in an hour would be a
                # flood, and its one visitor hash would make the count of a visitor's clicks
                # in the hour (the click_flood rule's) read every click of the month.
                async with sem:
                    r = await c.get(
                        f"/r/{link['code']}",
                        headers={"user-agent": f"{BROWSER} visitor/{i}-{n}"},
                        follow_redirects=False,
                    )
                tokens.append(parse_qs(urlsplit(r.headers["location"]).query)["aff_click_id"][0])
            return tokens

        per_partner = await asyncio.gather(*(one_partner(i) for i in range(partners)))
        return program["id"], list(per_partner), merchant


# --- the floor: the service's statements through bare asyncpg ---------------------------

SQL_LINK = (
    "SELECT l.*, p.name, p.email, p.status, p.parent_id, p.payout_method, p.payout_details,"
    " p.metadata FROM links l JOIN partners p ON p.id = l.partner_id WHERE l.id = $1"
)
# The month's row upserted and locked, the pair's agreements with their versions read
# beside it, and the click's fraud facts after them, in one statement, as the service sends
# them (service.conversions.intake): the clicks bounded, as the service's, by the months the
# flood hour spans, written as constants, and counted no further than the rule needs
# (service.fraud.repository).
SQL_READ = (
    "WITH month AS (INSERT INTO month_totals (partner_id, program_id, month, event, state)"
    " VALUES ($1, $2, $3, 'sale', '{{}}') ON CONFLICT (partner_id, program_id, month, event)"
    " DO UPDATE SET state = month_totals.state RETURNING month_totals.state)"
    " SELECT month.state, a.*, v.agreement_id, v.version, v.effective_from, v.terms,"
    " v.created_at, v.id, facts.* FROM month LEFT JOIN (agreements a JOIN agreement_versions v"
    " ON v.agreement_id = a.id) ON a.partner_id = $1 AND a.program_id = $2"
    " JOIN (SELECT click.referer, click.paid_markers, click.partner_id IS NOT NULL AS found,"
    " (SELECT count(*) FROM (SELECT 1 FROM clicks c1 WHERE c1.visitor_hash = click.visitor_hash"
    " AND c1.partner_id = click.partner_id AND c1.clicked_at >= $4 AND c1.clicked_at < $5"
    " AND c1.clicked_at >= '{start}'::timestamptz AND c1.clicked_at < '{end}'::timestamptz"
    " LIMIT $7) AS counted) AS visitors FROM (SELECT 1 AS one) AS one LEFT JOIN (SELECT referer, paid_markers,"
    " visitor_hash, partner_id FROM clicks WHERE id = $6 AND clicked_at = $5"
    " AND clicked_at >= '{start}'::timestamptz AND clicked_at < '{end}'::timestamptz) AS click"
    " ON true) AS facts ON true"
)


# How far the visitor's clicks are counted under the seeded program's rules, the defaults.
FLOOD_COUNTED = counted(Rules()).visitor_clicks


def read_sql(clicked_at: datetime) -> str:
    """SQL_READ for a click at `clicked_at`."""
    start, end = spanned(clicked_at - timedelta(hours=1), clicked_at)
    return SQL_READ.format(start=start.isoformat(), end=end.isoformat())


# The conversion with its audit row, its entries and the month's new totals, in one
# statement; the entries and the month only when the conversion went in (not on a replay).
SQL_WRITE = (
    "WITH inserted AS (INSERT INTO conversions (id, program_id, type, order_id, status, amount_minor, currency,"
    " program_amount_minor, program_currency, refunded_minor, occurred_at, click_token,"
    " click_id, link_id, items, metadata, partner_id, attribution_method, attribution,"
    " agreement_id, agreement_version, counted, hold_days, commission_explain, fraud,"
    " request_hash) VALUES ($1, $2, 'sale', $3, 'accepted', $4, 'USD', $4, 'USD', 0, $5, $6,"
    " $7, $8, '[]', '{}', $9, 'click', $10, $11, 1, true, 30, $12, '[]', $13)"
    " ON CONFLICT (program_id, type, order_id) DO NOTHING RETURNING created_at, updated_at),"
    " audited AS (INSERT INTO audit_events (id, actor_key_id, actor_role, action, object_type,"
    " object_id, data) SELECT $14, NULL, 'merchant', 'conversion.recorded', 'conversion', $1,"
    " $15 FROM inserted),"
    " saved_month AS (UPDATE month_totals SET state = $25::jsonb, updated_at = now()"
    " WHERE partner_id = $9 AND program_id = $2 AND month = $18::date AND event = 'sale'"
    " AND EXISTS (SELECT * FROM inserted)),"
    " entries AS (INSERT INTO commission_entries (partner_id, program_id, conversion_id, kind,"
    " amount_minor, currency, available_at, agreement_id, agreement_version, period_month,"
    " rule_event, explain, id)"
    " SELECT $9::uuid, $2::uuid, $1::uuid, 'commission', $16::bigint, 'USD',"
    " $17::timestamptz, $11::uuid, 1, $18::date, 'sale', $19::jsonb, $20::uuid FROM inserted"
    " UNION ALL SELECT $21::uuid, $2::uuid, $1::uuid, 'override', $22::bigint, 'USD',"
    " $17::timestamptz, $11::uuid, 1, $18::date, 'sale', $23::jsonb, $24::uuid FROM inserted)"
    " SELECT created_at, updated_at, event_subscriptions_version() FROM inserted"
)
FLOOR_STATEMENTS = 3


async def service_payloads(url: str) -> dict[str, str]:
    """The JSON the service stored for one of its sales (the conversion's explanation and
    attribution, its entries' explanations, its audit data, the month's totals): the floor
    writes the same, so that both write rows of the same size."""
    conn = await asyncpg.connect(plain(url))
    try:
        row = await conn.fetchrow(
            "SELECT c.commission_explain::text AS explain, c.attribution::text AS attribution,"
            " (SELECT e.explain::text FROM commission_entries e WHERE e.conversion_id = c.id"
            "  AND e.kind = 'commission') AS commission,"
            " (SELECT e.explain::text FROM commission_entries e WHERE e.conversion_id = c.id"
            "  AND e.kind = 'override') AS override,"
            " (SELECT a.data::text FROM audit_events a WHERE a.object_id = c.id) AS audit,"
            " (SELECT m.state::text FROM month_totals m WHERE m.partner_id = c.partner_id"
            "  ORDER BY m.updated_at DESC LIMIT 1) AS state"
            " FROM conversions c WHERE c.order_id LIKE 'wrk-%' ORDER BY c.id DESC LIMIT 1"
        )
    finally:
        await conn.close()
    if row is None or None in tuple(row):
        raise SystemExit("the service's warm-up stored no sale with both entries to copy")
    return dict(row)


async def floor(
    url: str, program_id: str, seconds: float, concurrency: int
) -> tuple[int, list[float], float | None]:
    """Conversions per second of the bare statements; returns (count, latencies, CPU
    seconds of the pool's own backends, None when the server is not on this machine)."""
    from service.kit.ids import new_id

    conn = await asyncpg.connect(plain(url))
    try:
        clicks = await conn.fetch(
            "SELECT c.id, c.clicked_at, c.link_id, c.partner_id, c.click_token, a.id AS agreement,"
            " p.parent_id FROM clicks c JOIN agreements a ON a.partner_id = c.partner_id"
            " JOIN partners p ON p.id = c.partner_id WHERE c.program_id = $1",
            uuid.UUID(program_id),
        )
    finally:
        await conn.close()
    program = uuid.UUID(program_id)
    month = datetime.now(UTC).date().replace(day=1)
    payload = await service_payloads(url)
    # reset=: nothing sent when a connection goes back, as in the service, whose pool only
    # rolls back a transaction left open. asyncpg's default reset (RESET ALL, CLOSE ALL,
    # UNLISTEN *, advisory unlock) would add a round trip to every floor conversion.
    # Named, so that its backends' CPU can be read before they exit with the pool.
    pool = await asyncpg.create_pool(
        plain(url),
        min_size=POOL,
        max_size=POOL,
        reset=nothing_to_reset,
        server_settings={"application_name": FLOOR_APPLICATION},
    )
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    run = secrets.token_hex(4)

    async def one(rng: random.Random, n: int) -> None:
        c = rng.choice(clicks)
        now = datetime.now(UTC)
        amount = rng.randint(500, 50_000)
        async with pool.acquire() as db, db.transaction():
            conv = new_id()
            await db.fetchrow(SQL_LINK, c["link_id"])
            at = c["clicked_at"]
            await db.fetch(
                read_sql(at),
                c["partner_id"],
                program,
                month,
                at - timedelta(hours=1),
                at,
                c["id"],
                FLOOD_COUNTED,
            )
            await db.fetchrow(
                SQL_WRITE,
                conv,
                program,
                f"floor-{run}-{n}",
                amount,
                now,
                c["click_token"],
                c["id"],
                c["link_id"],
                c["partner_id"],
                payload["attribution"],
                c["agreement"],
                payload["explain"],
                os.urandom(32),
                new_id(),
                payload["audit"],
                amount // 10,
                now + timedelta(days=30),
                month,
                payload["commission"],
                new_id(),
                c["parent_id"],
                amount // 20,
                payload["override"],
                new_id(),
                payload["state"],
            )

    counter = 0

    async def worker(w: int) -> None:
        nonlocal counter
        rng = random.Random(w)
        while time.perf_counter() < stop_at:
            counter += 1
            t0 = time.perf_counter()
            await one(rng, counter)
            latencies.append(time.perf_counter() - t0)

    try:
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        backends = await backends_seconds(pool, FLOOR_APPLICATION)
    finally:
        await pool.close()
    return len(latencies), latencies, backends


async def backends_seconds(pool: asyncpg.Pool, application: str) -> float | None:
    """CPU seconds the backends of `application`'s connections used since they started
    (the floor's pool is opened for its round), read while they are alive."""
    pids = await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application
    )
    used = [seconds_if_running(r["pid"]) for r in pids]
    # None: a backend not seen here, the server being on another machine.
    return None if None in used else sum(u for u in used if u is not None)


# --- the service: wrk with a Lua script ---------------------------------------------------

LUA = """
local tokens = {%(tokens)s}
local program = "%(program)s"
local auth = "Bearer %(key)s"
local run = "%(run)s"
counter = 0
errors = 0
local threads = {}
local id = 0

function setup(thread)
  id = id + 1
  thread:set("tid", id)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tid * 7919)
end

function request()
  counter = counter + 1
  local cents = math.random(500, 50000)
  local body = string.format(
    '{"program_id":"%%s","type":"sale","order_id":"wrk-%%s-%%d-%%d",' ..
    '"amount":"%%d.%%02d","click_id":"%%s"}',
    program, run, tid, counter, math.floor(cents / 100), cents %% 100, tokens[math.random(#tokens)])
  return wrk.format("POST", "/v1/conversions",
    {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end

function response(status, headers, body)
  if status ~= 201 then errors = errors + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("errors") end
  io.write(string.format("RESULT %%d %%d %%.3f %%.3f %%d\\n", summary.requests, bad,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration))
end
"""


class Load(NamedTuple):
    """What wrk's script reported: answered requests, non-201s, latencies (ms), seconds."""

    requests: int
    errors: int
    p50: float
    p99: float
    seconds: float


def service_load(
    base: str, key: str, program_id: str, tokens: list[str], seconds: float, concurrency: int
) -> tuple[str, Load]:
    run = secrets.token_hex(4)
    script = Path(tempfile.mkdtemp(prefix="bench-wrk-")) / "conversions.lua"
    quoted = ",".join(f'"{t}"' for t in tokens)
    script.write_text(LUA % {"tokens": quoted, "program": program_id, "key": key, "run": run})
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{concurrency}",
            f"-d{seconds:g}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shutil.rmtree(script.parent, ignore_errors=True)
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)", out)
    if match is None:
        raise SystemExit(f"wrk printed no result:\n{out}")
    requests, errors, p50, p99, micros = match.groups()
    return run, Load(int(requests), int(errors), float(p50), float(p99), int(micros) / 1e6)


async def stored(url: str, prefix: str) -> tuple[int, int]:
    """Conversions with this order id prefix, and how many of them have no entry."""
    conn = await asyncpg.connect(plain(url))
    try:
        row = await conn.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS"
            " (SELECT FROM commission_entries e WHERE e.conversion_id = c.id))"
            " FROM conversions c WHERE c.order_id LIKE $1",
            prefix + "%",
        )
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


async def vacuum(url: str) -> None:
    """Both timed rounds start from tables without the dead rows of the rounds before (the
    month rows are updated by every conversion)."""
    conn = await asyncpg.connect(plain(url))
    try:
        await conn.execute(
            "VACUUM (ANALYZE) month_totals, conversions, commission_entries, unpaid_entries,"
            " audit_events"
        )
    finally:
        await conn.close()


@dataclass
class Phase:
    """One side's conversions, seconds and CPU (its process; the database's backends and
    whole server, None when not measured), over one round or summed over all."""

    count: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    database_cpu: tuple[float, float] | None = (0.0, 0.0)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def add(self, other: Phase) -> None:
        self.count += other.count
        self.seconds += other.seconds
        self.cpu += other.cpu
        if self.database_cpu is None or other.database_cpu is None:
            self.database_cpu = None
        else:
            self.database_cpu = (
                self.database_cpu[0] + other.database_cpu[0],
                self.database_cpu[1] + other.database_cpu[1],
            )
        self.errors += other.errors
        self.latencies += other.latencies
        self.p50s += other.p50s
        self.p99s += other.p99s

    def cpu_ms(self) -> float:
        return self.cpu / max(self.count, 1) * 1000

    def database(self) -> str:
        if self.database_cpu is None:
            return "database not measured (the server is not on this machine)"
        own, whole = (x / max(self.count, 1) * 1000 for x in self.database_cpu)
        return f"{whole:.2f} ms in the database (whole server), {own:.2f} ms in its backends"


async def bench(
    url: str, seconds: float, rounds: int, concurrency: int, partners: int, workers: int
) -> bool:
    # The service gets the floor's connections, shared among its workers: more of them would
    # put more transactions at once on the same month rows, each waiting on the others.
    pool = max(1, POOL // workers)
    server = Server(
        database_url=url, workers=workers, extra_env={"AFFILIATE_DB_POOL_SIZE": str(pool)}
    )
    try:
        admin_key = server.admin_key()
        base = server.start()
        admin = {"Authorization": f"Bearer {admin_key}"}
        program_id, tokens, merchant = await seed(base, admin, partners, 40)
        flat = [t for per in tokens for t in per]
        # Warm-up of both, so that neither pays for cold caches in its timed round.
        service_load(base, merchant, program_id, flat, 2, concurrency)
        await floor(url, program_id, 2.0, concurrency)

        cpu = DatabaseCpu(url)
        assert server.proc is not None
        floor_total = Phase()
        service_total = Phase()
        ratios = []
        stored_ok = True
        # Alternating rounds: the machine's speed drifts over a minute, and a ratio of two
        # runs taken at different speeds would measure the drift.
        for n in range(1, rounds + 1):
            await vacuum(url)
            await cpu.start()
            client0, t0 = time.process_time(), time.perf_counter()
            done, latencies, own = await floor(url, program_id, seconds, concurrency)
            elapsed = time.perf_counter() - t0
            server_cpu = await cpu.stop()
            # The floor's own backends exited with its pool: their CPU was read before.
            floor_cpu = None if server_cpu is None or own is None else (own, server_cpu[1])
            floor_round = Phase(done, elapsed, time.process_time() - client0, floor_cpu)
            floor_round.latencies = latencies
            floor_total.add(floor_round)

            await vacuum(url)
            await cpu.start()
            service0 = process_seconds(server.proc.pid, tree=True)
            run, r = service_load(base, merchant, program_id, flat, seconds, concurrency)
            service_round = Phase(
                r.requests,
                r.seconds,
                process_seconds(server.proc.pid, tree=True) - service0,
                await cpu.stop(),
            )
            service_round.errors = r.errors
            service_round.p50s.append(r.p50)
            service_round.p99s.append(r.p99)
            service_total.add(service_round)
            count, without = await stored(url, f"wrk-{run}-")
            # wrk counts answered requests; the ones in flight when it stopped are stored too.
            stored_ok = stored_ok and (
                r.errors == 0 and without == 0 and r.requests <= count <= r.requests + 64
            )
            ratio = service_round.rate / floor_round.rate
            ratios.append(ratio)
            print(
                f"round {n}: floor {floor_round.rate:.0f}/s, service {service_round.rate:.0f}/s,"
                f" ratio {ratio:.2f}; stored {count} of the service's {r.requests} answered"
                f" (in flight at the end included), without entries {without}"
            )

        latencies = sorted(floor_total.latencies)
        print(
            f"floor (bare asyncpg, {FLOOR_STATEMENTS} statements + BEGIN/COMMIT, pool {POOL},"
            f" concurrency {concurrency}): {floor_total.count} in {floor_total.seconds:.1f} s"
            f" = {floor_total.rate:.0f}/s; p50 {percentile(latencies, 0.5) * 1000:.1f} ms,"
            f" p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
        )
        print(
            f"floor CPU per conversion: {floor_total.cpu_ms():.2f} ms in this process,"
            f" {floor_total.database()}"
        )
        print(
            f"service ({workers} uvicorn worker{'s' if workers > 1 else ''} with a pool of {pool}"
            f" each, wrk -t2 -c{concurrency}, {partners} partners): {service_total.count} in"
            f" {service_total.seconds:.1f} s = {service_total.rate:.0f}/s; p50"
            f" {statistics.median(service_total.p50s):.1f} ms, p99"
            f" {statistics.median(service_total.p99s):.1f} ms (medians of the rounds);"
            f" non-201 {service_total.errors}"
        )
        print(
            f"service CPU per conversion: {service_total.cpu_ms():.2f} ms in the service's"
            f" process{'es' if workers > 1 else ''}, {service_total.database()}"
        )
        ratio = statistics.median(ratios)
        print(
            f"ratio service/floor: {ratio:.2f}, the median of {rounds} round{'s' if rounds > 1 else ''}"
            f" ({', '.join(f'{x:.2f}' for x in ratios)}) (goal >= {GOAL_RATIO}:"
            f" {'met' if ratio >= GOAL_RATIO else 'missed'}); every 201 stored with entries:"
            f" {'yes' if stored_ok else 'NO'}"
        )
        ok = stored_ok
        return ok
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="of each side, each round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--partners", type=int, default=50)
    parser.add_argument(
        "--workers",
        type=int,
        default=image_workers(),
        help="uvicorn workers of the service (default: the Docker image's)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")

    with bench_database("conversions") as url:
        ok = asyncio.run(
            bench(url, args.seconds, args.rounds, args.concurrency, args.partners, args.workers)
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
