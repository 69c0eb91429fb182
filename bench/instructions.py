"""Instructions per conversion or per click: the service's own work, counted by valgrind.

    python bench/instructions.py [--path sales|refunds|clicks] [--small N] [--large N] [--customers K]
                                 [--promo] [--currency EUR] [--renewals]

Rates and CPU seconds on a shared machine drift by a tenth or more within minutes, so a
change of a few percent in what a conversion costs cannot be told from the drift. This
counts instead: the app runs in one process under valgrind's callgrind, which counts the
instructions it executes (the database runs apart, natively, and is not counted). Two such
processes, alike but for how many sales they record (`--small` and `--large`, one at a time
through the whole ASGI stack: body limit, FastAPI, auth, the intake, the ledger), each on a
fresh database; the difference of their totals over the difference of their sales is what
one sale costs, start-up and seeding cancelling out. With `--customers K`, each sale also
names one of K customers (`customer_id`), most of them seen before: the customer's row is
then upserted, locked and, on its first attributed sale, bound to the partner. With
`--promo`, each sale is attributed by one of the partners' promo codes instead of a click
id; with `--currency C`, sales are in currency C, converted at a rate C->USD stored through
the API. With `--renewals` (and `--customers K`, K at most 50), each customer's first sale
comes with a click id in the warm-up, and the counted sales are its renewals, attributed by
the customer alone.

`--path refunds` counts a refund the same way: both processes record as many sales first,
then refund 1.00 of as many of them as they count (through POST /v1/refunds, one at a time).

`--path clicks` counts GET /r/{code} the same way: the redirect's clicks, 32 at a time (as
concurrent requests are, so that the click writer commits them in batches of 32), each a new
visitor, in durable mode, on uvloop when installed (as uvicorn runs it). The app is called
as uvicorn calls it, so uvicorn's own HTTP handling is not in the count. Needs valgrind (apt-get install
valgrind); uses an embedded PostgreSQL, or fresh databases on the server named by
DATABASE_URL (dropped afterwards). A figure, not a test: a count for comparing two versions
of the code on one machine, not a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import conversions as sales
import redirect as clicks
from _harness import app_in_process, on_server

from service.db import EmbeddedPostgres, to_async_url

PARTNERS = 5
CLICKS_EACH = 4
WARM_UP = 50
# Clicks go in groups of this many concurrent requests; counts are rounded to a multiple.
CLICK_GROUP = 32
DEFAULTS = {"sales": (100, 300), "refunds": (100, 300), "clicks": (640, 1920)}


@dataclass(frozen=True)
class Shape:
    """What each sale names besides its amount: a customer (one of `customers`), a promo
    code instead of a click id, another currency than the program's."""

    customers: int = 0
    promo: bool = False
    currency: str | None = None
    # --path refunds: this many sales first, then the counted refunds.
    refunded_sales: int = 0
    # Customers bought once by a click (in the warm-up), then renew without one.
    renewals: bool = False


async def record(url: str, count: int, shape: Shape = Shape()) -> dict[int, int]:
    """In this process: the app on `url`, seeded through its API, then `count` sales one at
    a time straight through its ASGI stack; the answers' statuses, counted."""
    from service.config import Settings

    async with app_in_process(Settings(worker=False, migrate=False), url) as (asgi, admin):
        plain_client = httpx.AsyncClient

        def client(**kwargs: Any) -> httpx.AsyncClient:
            return plain_client(transport=httpx.ASGITransport(app=asgi), **kwargs)

        # The seeding's client, through the app in this process instead of a socket.
        httpx.AsyncClient = client  # type: ignore[misc, assignment]
        program_id, tokens, merchant = await sales.seed(
            "http://bench", admin, PARTNERS, CLICKS_EACH
        )
        clicks = [t for per in tokens for t in per]
        codes = await _promo_codes(admin, program_id) if shape.promo else []
        if shape.currency:
            async with httpx.AsyncClient(base_url="http://bench", headers=admin) as c:
                yesterday = datetime.now(UTC).date() - timedelta(days=1)
                r = await c.post(
                    "/v1/fx-rates",
                    json={
                        "base_currency": shape.currency,
                        "quote_currency": "USD",
                        "rate": "1.0842",
                        "date": yesterday.isoformat(),
                    },
                )
                assert r.status_code == 201, r.text
        headers = [
            (b"authorization", f"Bearer {merchant}".encode()),
            (b"content-type", b"application/json"),
            (b"host", b"bench"),
        ]
        statuses: dict[int, int] = {}
        rng = random.Random(7)

        async def one(order: str, n: int = 0) -> None:
            sale = {
                "program_id": program_id,
                "type": "sale",
                "order_id": order,
                "amount": f"{rng.randint(1000, 90000) / 100:.2f}",
                "currency": shape.currency or "USD",
            }
            if shape.renewals:
                # Each customer's first sale (in the warm-up) by a click; then renewals,
                # attributed by the customer alone.
                if n < shape.customers:
                    sale["click_id"] = rng.choice(clicks)
                    sale["customer_id"] = f"customer-{n}"
                else:
                    sale["customer_id"] = f"customer-{rng.randrange(shape.customers)}"
            else:
                if codes:
                    sale["promo_code"] = rng.choice(codes)
                else:
                    sale["click_id"] = rng.choice(clicks)
                if shape.customers:
                    sale["customer_id"] = f"customer-{rng.randrange(shape.customers)}"
            await post("/v1/conversions", sale)

        async def post(path: str, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            length = (b"content-length", str(len(body)).encode())
            scope = _scope("POST", path, b"", [*headers, length])
            received = False

            async def receive() -> dict[str, Any]:
                nonlocal received
                if not received:
                    received = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await asyncio.Event().wait()  # the client never hangs up
                raise AssertionError("unreachable")

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses[message["status"]] = statuses.get(message["status"], 0) + 1

            await asgi(scope, receive, send)

        if not shape.refunded_sales:
            for n in range(WARM_UP + count):
                await one(f"instructions-{n}", n)
            return statuses
        # Refunds: as many sales in every run, then `count` refunds (after the warm-up's),
        # each of another sale, so that only the refunds differ between two runs.
        for n in range(shape.refunded_sales):
            await one(f"instructions-{n}")
        if set(statuses) != {201}:
            return statuses
        statuses.clear()
        for n in range(WARM_UP + count):
            refund = {"program_id": program_id, "order_id": f"instructions-{n}", "amount": "1.00"}
            await post("/v1/refunds", {**refund, "refund_id": f"refund-{n}"})
        return statuses


async def _promo_codes(admin: dict[str, str], program_id: str) -> list[str]:
    """A promo code for each seeded partner (not the parent), through the API."""
    async with httpx.AsyncClient(base_url="http://bench", headers=admin) as c:
        partners = (await c.get("/v1/partners", params={"limit": 200})).json()["items"]
        codes: list[str] = []
        for partner in partners:
            if not partner["name"].startswith("Blog "):
                continue
            code = f"BENCH{len(codes)}"
            r = await c.post(
                "/v1/promo-codes",
                json={"program_id": program_id, "partner_id": partner["id"], "code": code},
            )
            assert r.status_code == 201, r.text
            codes.append(code)
    return codes


async def record_clicks(url: str, count: int) -> dict[int, int]:
    """In this process: the app on `url` with a link made through its API, then `count`
    clicks on it, CLICK_GROUP at a time, straight into its ASGI app; the answers' statuses."""
    from service.config import Settings

    settings = Settings(
        worker=False,
        migrate=False,
        client_ip_header="X-Forwarded-For",
        trusted_proxies="127.0.0.1/32",
    )
    async with app_in_process(settings, url) as (asgi, admin):
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=admin
        ) as c:
            program = await c.post(
                "/v1/programs",
                json={
                    "name": "Bench shop",
                    "currency": "USD",
                    "default_url": "https://shop.example/",
                },
            )
            partner = await c.post(
                "/v1/partners", json={"name": "Bench", "email": "bench@bench.example"}
            )
            link = await c.post(
                "/v1/links", json=clicks.link_body(program.json()["id"], partner.json()["id"])
            )
            assert link.status_code == 201, link.text
        code = link.json()["code"]
        agent = clicks.USER_AGENT.encode()
        statuses: dict[int, int] = {}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        async def one(n: int) -> None:
            visitor = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}".encode()
            headers = [(b"host", b"bench"), (b"user-agent", agent), (b"x-forwarded-for", visitor)]
            scope = _scope("GET", f"/r/{code}", b"sub1=bench", headers)
            await asgi(scope, receive, send)

        total = WARM_UP + count
        for start in range(0, total, CLICK_GROUP):
            await asyncio.gather(*(one(n) for n in range(start, min(total, start + CLICK_GROUP))))
        return statuses


def _scope(method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
    # An HTTP request's ASGI scope, as uvicorn makes it for a client on 127.0.0.1.
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


def counted(out: Path) -> int:
    """The total of instructions in a callgrind output file."""
    found = re.search(r"^totals: (\d+)$", out.read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit(f"no totals in {out}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--path", choices=sorted(DEFAULTS), default="sales")
    parser.add_argument("--small", type=int)
    parser.add_argument("--large", type=int)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=0, help="sales name one of K customers")
    parser.add_argument("--promo", action="store_true", help="sales name a promo code")
    parser.add_argument("--currency", help="sales in this currency (not USD)")
    parser.add_argument(
        "--renewals", action="store_true", help="customers' later sales, without a click"
    )
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--refunded-sales", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.path == "clicks":
            statuses = _loop_run(record_clicks(args.child, args.count))
            print(json.dumps(statuses))
            return 0 if set(statuses) == {302} else 1
        shape = Shape(args.customers, args.promo, args.currency, args.refunded_sales, args.renewals)
        statuses = asyncio.run(record(args.child, args.count, shape))
        print(json.dumps(statuses))
        return 0 if set(statuses) == {201} else 1
    small, large = DEFAULTS[args.path]
    args.small = small if args.small is None else args.small
    args.large = large if args.large is None else args.large
    if args.path == "clicks":
        # Whole groups only, so that every batch the writer commits is as big.
        args.small, args.large = (
            -(-n // CLICK_GROUP) * CLICK_GROUP for n in (args.small, args.large)
        )
    unit = {"sales": "sale", "refunds": "refund", "clicks": "click"}[args.path]
    if args.renewals and not 0 < args.customers <= WARM_UP:
        raise SystemExit(f"--renewals needs --customers K, K from 1 to {WARM_UP}")
    if args.large <= args.small:
        raise SystemExit("--large must be more than --small")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")

    tmp = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    embedded = None
    given = os.environ.get("DATABASE_URL")
    if given:
        server_url = sales.plain(given)
    else:
        embedded = EmbeddedPostgres(tmp / "pg")
        server_url = sales.plain(embedded.start())
    names = [f"affiliate_bench_{secrets.token_hex(4)}" for _ in range(2)]

    try:
        from service import migrate

        urls = []
        for name in names:
            asyncio.run(on_server(server_url, f'CREATE DATABASE "{name}"'))
            url = to_async_url(urlunsplit(urlsplit(server_url)._replace(path=f"/{name}")))
            migrate.upgrade(url)
            urls.append(url)
        env = {**os.environ, "PYTHONHASHSEED": "0", "AFFILIATE_LOG_LEVEL": "warning"}
        env.pop("DATABASE_URL", None)
        runs = []
        started = time.perf_counter()
        for url, count in zip(urls, (args.small, args.large), strict=True):
            out = tmp / f"callgrind.{count}.out"
            cmd = [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--path",
                args.path,
                "--child",
                url,
                "--count",
                str(count),
                "--customers",
                str(args.customers),
                *(["--promo"] if args.promo else []),
                *(["--currency", args.currency] if args.currency else []),
                *(["--renewals"] if args.renewals else []),
                # Refunds: every run records as many sales first (the warm-up's and the
                # larger run's refunds each refund one).
                *(
                    ["--refunded-sales", str(WARM_UP + args.large)]
                    if args.path == "refunds"
                    else []
                ),
            ]
            log = (tmp / f"run.{count}.log").open("w")
            runs.append((count, out, log, subprocess.Popen(cmd, stdout=log, stderr=log, env=env)))
        for count, out, log, proc in runs:
            proc.wait(timeout=3600)
            log.close()
            text = (tmp / f"run.{count}.log").read_text()
            if proc.returncode != 0:
                raise SystemExit(f"the run of {count} {unit}s failed:\n{text[-3000:]}")
            print(f"{count} {unit}s (and {WARM_UP} to warm up): {counted(out):,} instructions")
        small, large = (counted(out) for _, out, _, _ in runs)
        each = (large - small) / (args.large - args.small)
        if args.path == "clicks":
            how = f"through the ASGI app (uvicorn's HTTP aside), {CLICK_GROUP} at a time, durable"
        else:
            how = f"through the whole ASGI stack, one {unit} at a time"
            if args.path == "refunds":
                how += " (a partial refund of a sale)"
            if args.customers:
                how += f", sales naming one of {args.customers} customers"
            if args.renewals:
                how += " (renewals, attributed by the customer)"
            if args.promo:
                how += ", attributed by promo code"
            if args.currency:
                how += f", in {args.currency}"
        print(
            f"instructions per {unit}: {each:,.0f} in the service's process, {how}"
            f" ({time.perf_counter() - started:.0f} s under valgrind)"
        )
    finally:
        for name in names:
            asyncio.run(on_server(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _loop_run(coro: Any) -> Any:
    # The event loop uvicorn picks: uvloop when installed.
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    raise SystemExit(main())
