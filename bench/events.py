"""Events out: what the outbox write adds to a conversion, and deliveries per second.

One server worker on an embedded PostgreSQL (or DATABASE_URL), its background worker off
(AFFILIATE_WORKER=0) so that the conversion figures measure the write alone:

1. conversions per second with no webhook endpoint (emit costs one version read);
2. the same load with one endpoint taking every event ("*"): each conversion then writes
   its conversion.created and commission.created events and their deliveries;
3. `python -m service worker` started apart, draining that backlog to a receiver on
   127.0.0.1 (in this process): deliveries per second, signed, over HTTP.

    python bench/events.py [--seconds 10] [--concurrency 32] [--partners 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, Server, percentile
from conversions import seed


class Receiver:
    """A bare HTTP/1.1 receiver (keep-alive, 200 to everything) counting what it gets."""

    def __init__(self) -> None:
        self.count = 0
        self.ids: set[bytes] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    lower = line.lower()
                    if lower.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                    elif lower.startswith(b"webhook-id:"):
                        self.ids.add(line.split(b":", 1)[1].strip())
                if length:
                    await reader.readexactly(length)
                self.count += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def load(
    base: str,
    program_id: str,
    tokens: list[list[str]],
    merchant: dict[str, str],
    seconds: float,
    concurrency: int,
) -> tuple[list[float], int, int]:
    """Sales for `seconds`; latencies, errors, and the ledger entries they wrote."""
    run_id = random.getrandbits(48)
    latencies: list[float] = []
    errors = entries = counter = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=merchant, timeout=30, limits=limits) as c:

        async def worker(w: int) -> None:
            nonlocal errors, entries, counter
            rng = random.Random(w)
            while time.perf_counter() < stop_at:
                counter += 1
                body = {
                    "program_id": program_id,
                    "type": "sale",
                    "order_id": f"ev-{run_id}-{w}-{counter}",
                    "amount": f"{rng.randint(500, 50_000) / 100:.2f}",
                    "click_id": rng.choice(rng.choice(tokens)),
                    "occurred_at": datetime.now(UTC).isoformat(),
                }
                t0 = time.perf_counter()
                r = await c.post("/v1/conversions", json=body)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    errors += 1
                else:
                    entries += len(r.json()["commissions"])

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return latencies, errors, entries


def line(label: str, latencies: list[float], elapsed: float, errors: int) -> float:
    latencies.sort()
    rate = len(latencies) / elapsed
    print(
        f"conversions, {label}: {len(latencies)} in {elapsed:.1f} s = {rate:.0f}/s; p50 "
        f"{percentile(latencies, 0.5) * 1000:.1f} ms, p99 "
        f"{percentile(latencies, 0.99) * 1000:.1f} ms; errors {errors}"
    )
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--partners", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    env = {"AFFILIATE_WORKER": "0", "AFFILIATE_WEBHOOK_ALLOW_PRIVATE": "true"}
    server = Server(extra_env=env, database_url=args.database_url)
    receiver = Receiver()
    await receiver.start()
    worker: subprocess.Popen[bytes] | None = None
    try:
        admin_key = server.admin_key()
        base = server.start()
        admin = {"Authorization": f"Bearer {admin_key}"}
        program_id, tokens, merchant_key = await seed(base, admin, args.partners, 40)
        merchant = {"Authorization": f"Bearer {merchant_key}"}
        await load(base, program_id, tokens, merchant, 2.0, args.concurrency)  # warm-up

        t0 = time.perf_counter()
        lat, errors, _ = await load(
            base, program_id, tokens, merchant, args.seconds, args.concurrency
        )
        without = line("no endpoint", lat, time.perf_counter() - t0, errors)

        async with httpx.AsyncClient(base_url=base, headers=admin) as c:
            r = await c.post(
                "/v1/webhook-endpoints",
                json={"url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["*"]},
            )
            assert r.status_code == 201, r.text
        t0 = time.perf_counter()
        lat, errors, entries = await load(
            base, program_id, tokens, merchant, args.seconds, args.concurrency
        )
        with_one = line("one endpoint taking every event", lat, time.perf_counter() - t0, errors)
        async with httpx.AsyncClient(base_url=base, headers=admin) as c:
            endpoint = r.json()["id"]
            r = await c.patch(f"/v1/webhook-endpoints/{endpoint}", json={"status": "disabled"})
            assert r.status_code == 200, r.text
        t0 = time.perf_counter()
        lat_again, errors_again, _ = await load(
            base, program_id, tokens, merchant, args.seconds, args.concurrency
        )
        again = line(
            "no endpoint again (drift check)", lat_again, time.perf_counter() - t0, errors_again
        )
        baseline = (without + again) / 2
        print(
            f"outbox write: {with_one / baseline:.2f}x the throughput without endpoints "
            f"(mean of the runs before and after; {100 * (1 - with_one / baseline):.1f}% less)"
        )
        async with httpx.AsyncClient(base_url=base, headers=admin) as c:
            r = await c.patch(f"/v1/webhook-endpoints/{endpoint}", json={"status": "enabled"})
            assert r.status_code == 200, r.text

        # At least conversion.created and a commission.created per entry the merchant sees.
        expected = len(lat) - errors + entries
        before = receiver.count
        worker = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
            [sys.executable, "-m", "service", "worker"],
            cwd=ROOT,
            env={**server.env, "AFFILIATE_MIGRATE": "0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = None
        deadline = time.monotonic() + 600
        last_change, seen = time.perf_counter(), receiver.count
        # Until the backlog is drained: everything expected came, and nothing more for 1 s.
        while time.monotonic() < deadline:
            now = time.perf_counter()
            if receiver.count != seen:
                seen, last_change = receiver.count, now
                started = started or now
            elif started is not None and seen - before >= expected and now - last_change > 1:
                break
            await asyncio.sleep(0.01)
        assert started is not None, "the worker delivered nothing"
        elapsed = last_change - started
        done = receiver.count - before
        print(
            f"deliveries: {done} in {elapsed:.1f} s = {done / elapsed:.0f}/s "
            "(python -m service worker, 1 process, batch 50, to a receiver on 127.0.0.1); "
            f"distinct webhook-ids {len(receiver.ids)}"
        )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
