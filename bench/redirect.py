"""The redirect against a bare ASGI app answering the same 302, on 127.0.0.1.

    python bench/redirect.py [--concurrency 64] [--rounds 3] [--seconds 5]
                             [--modes durable,async,nats] [--client auto|wrk|python]

Starts, in this one run: an embedded PostgreSQL (or uses BENCH_DATABASE_URL, in a fresh
database), a bare ASGI app and the real service (one uvicorn worker each, same flags),
creates a real link, then loads each server in turn with the same client settings for
several alternating rounds. Every request is a new visitor (X-Forwarded-For varies), so
each click also writes a visitor-day row. Prints req/s, their ratio, p50/p99, clicks
committed in the database against 302s answered, and the database CPU per click. A figure,
not a test.

In durable mode the same rounds also load a third app, the durable floor
(bench/redirect_floor.py): the least an app can do and answer a 302 only once its click is
committed, with the rows the service stores (the service's own batch statement, group
commit over two connections as its click writer, on a link of its own). It prints the
floor's rate and two ratios, floor/bare (what committing a click before answering costs on
this machine, whatever the app) and redirect/floor (what the redirect's own work costs on
top), and checks the floor's committed clicks against its 302s too.

Database CPU per click: user + system CPU time (/proc/<pid>/stat) from just before a mode's
first round to the end of its last one (for the NATS modes, until the loader has caught up),
divided by the clicks committed meanwhile (the floor's rounds taken out). Two figures: the
backends connected to the bench database (the service's pools: click writer, link lookups,
loader), and the whole server's
process tree (postmaster, its live children, and the children that exited meanwhile), which
also holds the WAL writer, checkpointer and autovacuum. With BENCH_DATABASE_URL the whole
server is shared with whatever else runs on it; the backends figure is then the one to read.
Only measured when the server runs on this machine (its processes are in /proc).

Service CPU per click: the same, for the one uvicorn process serving the service (all of
its threads: the click writer, the link lookups and the NATS client run inside it), over
the same span and the same clicks.

Modes: `durable` and `async` are the PostgreSQL click writer's; `nats` and `nats-async`
publish each click to NATS JetStream (AFFILIATE_CLICK_LOG) and the service's own loader
writes them to PostgreSQL. The NATS server is BENCH_NATS_URL when set, else a
`nats-server -js` started on a free port with a temporary store (a stream of the run's own
either way, deleted at the end). For the NATS modes, "committed" is counted once the loader
has caught up (bounded wait).

The client is wrk when installed (--client auto), else a Python load generator with the
same concurrency over keep-alive connections in two processes. wrk drops the responses
still in flight at its deadline; the Python client drains them, so with it committed ==
answered is exact.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import DatabaseCpu, process_seconds

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
MAX_TOTAL_SECONDS = 600  # the whole run is bounded, whatever the arguments


# --- the bare app ---------------------------------------------------------------------------

_BARE_LOCATION = os.environ.get("BENCH_LOCATION", "https://shop.example/").encode()
# The 302 both baselines answer: the service's headers, a Location of the same length.
BARE_302 = {
    "type": "http.response.start",
    "status": 302,
    "headers": [
        (b"location", _BARE_LOCATION),
        (b"cache-control", b"no-store"),
        (b"content-length", b"0"),
    ],
}
EMPTY_BODY = {"type": "http.response.body", "body": b""}


async def lifespan(receive: Any, send: Any, startup: Any = None, shutdown: Any = None) -> None:
    """An ASGI lifespan, with `startup` and `shutdown` (coroutine functions) run at each."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if shutdown is not None:
                await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: the same 302 (same headers, same Location length), no work."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await send(BARE_302)
    await send(EMPTY_BODY)


# --- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uvicorn(app: str, port: int, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    """One uvicorn worker on 127.0.0.1; the same flags for both apps."""
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        *extra,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--no-proxy-headers",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "30",
    ]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def wait_ready(port: int, path: str, deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
            if r.status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM: uvicorn shuts down gracefully (the click writer drains)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- load generators ------------------------------------------------------------------------


def _request(host: str, path: str, n: int) -> bytes:
    ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
        f"X-Forwarded-For: {ip}\r\n\r\n"
    ).encode()


async def _connection(
    port: int, path: str, seed: int, stride: int, until: float, out: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    host = f"127.0.0.1:{port}"
    latencies: array[float] = out["latencies"]
    statuses: dict[int, int] = out["statuses"]
    n = seed
    perf = time.perf_counter
    try:
        while perf() < until:
            n += stride
            start = perf()
            writer.write(_request(host, path, n))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            length = int(match.group(1)) if match else 0
            if length:
                await reader.readexactly(length)
            latencies.append(perf() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def _python_worker(port: int, path: str, conns: int, seconds: float, index: int, pipe: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out: dict[str, Any] = {"latencies": array("d"), "statuses": {}}

    async def main() -> None:
        until = time.perf_counter() + seconds
        seed = index * 1_000_003 + int(time.time() * 1000) % 1_000_000 * 64
        await asyncio.gather(
            *(_connection(port, path, seed + i, conns * 7919, until, out) for i in range(conns))
        )

    asyncio.run(main())
    pipe.send((out["latencies"].tobytes(), out["statuses"]))
    pipe.close()


def load_python(port: int, path: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """Python load: `concurrency` keep-alive connections in two processes; in-flight drained."""
    procs = min(2, concurrency)
    ctx = multiprocessing.get_context("fork")
    workers = []
    for i in range(procs):
        conns = concurrency // procs + (1 if i < concurrency % procs else 0)
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_python_worker, args=(port, path, conns, seconds, i, child))
        p.start()
        workers.append((p, parent))
    start = time.perf_counter()
    latencies = array("d")
    statuses: dict[int, int] = {}
    for p, parent in workers:
        raw, st = parent.recv()
        p.join()
        latencies.frombytes(raw)
        for k, v in st.items():
            statuses[k] = statuses.get(k, 0) + v
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": len(ordered) / elapsed,
        "p50": _pct(ordered, 0.50),
        "p99": _pct(ordered, 0.99),
        "answered_302": statuses.get(302, 0),
        "other": sum(v for k, v in statuses.items() if k != 302),
    }


def _pct(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


WRK_SCRIPT = """
local n = 0
local tid = 0
setup = function(thread) thread:set("tid", tid); tid = tid + 1 end
request = function()
  n = n + 1
  local v = n * 16 + tid
  local ip = string.format("10.%d.%d.%d", math.floor(v / 65536) % 256,
                           math.floor(v / 256) % 256, v % 256)
  return wrk.format("GET", nil, {["User-Agent"] = "{UA}", ["X-Forwarded-For"] = ip})
end
"""


def _wrk_seconds(text: str) -> float:
    value = float(re.match(r"[\d.]+", text).group(0))  # type: ignore[union-attr]
    unit = text[len(re.match(r"[\d.]+", text).group(0)) :]  # type: ignore[union-attr]
    return value * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def load_wrk(port: int, path: str, concurrency: int, seconds: float, script: str) -> dict[str, Any]:
    """wrk with --latency; it drops what is in flight at its deadline."""
    threads = min(2, concurrency)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            script,
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _wrk_seconds(re.search(r"\n\s+50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _wrk_seconds(re.search(r"\n\s+99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    other = int(bad.group(1)) if bad else 0
    return {
        "requests": requests,
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "answered_302": requests - other,
        "other": other,
    }


# --- the database ---------------------------------------------------------------------------


def _plain(url: str) -> str:
    """asyncpg's URL of the database (no SQLAlchemy driver name)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _fresh_database(url: str) -> tuple[str, str]:
    import secrets as _secrets
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    name = f"affiliate_bench_{_secrets.token_hex(4)}"
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}")), name


async def _drop_database(url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _count_clicks(url: str, code: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(_plain(url))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM clicks c JOIN links l ON l.id = c.link_id WHERE l.code = $1",
                code,
            )
        )
    finally:
        await conn.close()


def _fmt_cpu(mode: str, used: tuple[float, float] | None, clicks: int) -> str:
    if used is None:
        return f"[{mode}] database CPU per click: not measured (the server is not on this machine)"
    if clicks <= 0:
        return f"[{mode}] database CPU per click: no clicks committed"
    backends, server = used
    return (
        f"[{mode}] database CPU per click: {server / clicks * 1e6:.0f} us whole server, "
        f"{backends / clicks * 1e6:.0f} us in the service's backends "
        f"({server:.2f} s and {backends:.2f} s over {clicks} clicks)"
    )


def _fmt_service_cpu(mode: str, seconds: float, clicks: int) -> str:
    if clicks <= 0:
        return f"[{mode}] service CPU per click: no clicks committed"
    return (
        f"[{mode}] service CPU per click: {seconds / clicks * 1e6:.0f} us in the uvicorn "
        f"process ({seconds:.2f} s over {clicks} clicks)"
    )


def link_body(program_id: str, partner_id: str) -> dict[str, Any]:
    """The bench's link: a destination with a query of its own and a fixed param."""
    return {
        "program_id": program_id,
        "partner_id": partner_id,
        "destination_url": "https://shop.example/product/42?color=blue",
        "params": {"utm_medium": "affiliate"},
    }


def _setup_link(port: int, key: str, partner: str = "bench") -> tuple[str, str]:
    """A program, a partner (named `partner`) and a link through the real API; the link code
    and a Location."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as c:
        program = c.post(
            "/v1/programs",
            json={
                "name": "Bench shop",
                "currency": "USD",
                "default_url": "https://shop.example/",
                "allowed_domains": ["shop.example", "*.shop.example"],
                "fallback_url": "https://shop.example/fallback",
            },
        )
        program.raise_for_status()
        made = c.post(
            "/v1/partners", json={"name": partner, "email": f"{partner}-{port}@bench.example"}
        )
        made.raise_for_status()
        link = c.post("/v1/links", json=link_body(program.json()["id"], made.json()["id"]))
        link.raise_for_status()
        code = link.json()["code"]
        r = c.get(
            f"/r/{code}?sub1=bench",
            headers={"User-Agent": USER_AGENT, "X-Forwarded-For": "10.255.255.255"},
            follow_redirects=False,
        )
        assert r.status_code == 302, r.text
        return code, r.headers["location"]


class FloorRounds:
    """The durable floor's process and what its rounds used: the database's CPU (taken out of
    the service's figure), its own CPU, the clicks it committed and the 302s it answered."""

    def __init__(self, url: str, code: str, proc: subprocess.Popen[bytes]) -> None:
        self.url, self.code, self.proc = url, code, proc
        self.database = (0.0, 0.0)
        self.seconds = 0.0
        self.clicks = 0
        self.answered = 1  # the setup redirect, answered by the service on the floor's link
        self._cpu = DatabaseCpu(url)
        self._process = 0.0
        self._clicks = 0

    def begin(self) -> None:
        asyncio.run(self._cpu.start())
        self._process = process_seconds(self.proc.pid)
        self._clicks = asyncio.run(_count_clicks(self.url, self.code))

    def end(self, *runs: dict[str, Any]) -> None:
        self.answered += sum(r["answered_302"] for r in runs)
        if (used := asyncio.run(self._cpu.stop())) is not None:
            self.database = (self.database[0] + used[0], self.database[1] + used[1])
        self.seconds += process_seconds(self.proc.pid) - self._process
        self.clicks += asyncio.run(_count_clicks(self.url, self.code)) - self._clicks


# --- NATS -----------------------------------------------------------------------------------

NATS_MODES = {"nats": "durable", "nats-async": "async"}
MODES = ("durable", "async", *NATS_MODES)


def start_nats(tmp: str) -> tuple[str, subprocess.Popen[bytes] | None]:
    """BENCH_NATS_URL, or a nats-server of the run's own on a free loopback port."""
    given = os.environ.get("BENCH_NATS_URL")
    if given:
        return given, None
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        raise RuntimeError("the nats modes need BENCH_NATS_URL or a nats-server binary")
    port = free_port()
    store = Path(tmp) / "nats"
    proc = subprocess.Popen(
        [binary, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(1)
            s.connect(("127.0.0.1", port))
            if s.recv(4).startswith(b"INFO"):
                return f"nats://127.0.0.1:{port}", proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nats-server did not start")


async def _delete_stream(url: str, name: str) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


def _wait_loaded(url: str, code: str, answered: int, deadline: float) -> int:
    """Clicks in the database once the loader stops gaining on what was answered."""
    count, still = -1, 0
    end = min(deadline, time.monotonic() + 60)
    while time.monotonic() < end:
        now = asyncio.run(_count_clicks(url, code))
        if now >= answered:
            return now
        still = still + 1 if now == count else 0
        if still >= 20:  # 5 s without progress
            return now
        count = now
        time.sleep(0.25)
    return count


# --- the run --------------------------------------------------------------------------------


def _median_round(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def _fmt(result: dict[str, Any]) -> str:
    return (
        f"{result['rps']:9.0f} req/s  p50 {result['p50'] * 1000:6.2f} ms  "
        f"p99 {result['p99'] * 1000:6.2f} ms"
    )


def run(args: argparse.Namespace) -> int:
    from service import migrate

    deadline = time.monotonic() + MAX_TOTAL_SECONDS
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    tmp = tempfile.mkdtemp(prefix="affiliate-bench-redirect-")
    embedded = None
    given = os.environ.get("BENCH_DATABASE_URL")
    dropped: tuple[str, str] | None = None
    procs: list[subprocess.Popen[bytes]] = []
    nats_url: str | None = None
    nats_proc: subprocess.Popen[bytes] | None = None
    stream = f"BENCH{os.getpid()}"
    try:
        if given:
            from service.db import to_async_url

            admin_url = to_async_url(given)
            url, name = asyncio.run(_fresh_database(admin_url))
            dropped = (admin_url, name)
        else:
            from service.db import EmbeddedPostgres

            embedded = EmbeddedPostgres(Path(tmp) / "pg")
            url = embedded.start()
        migrate.upgrade(url)

        env = {k: v for k, v in os.environ.items() if not k.startswith("AFFILIATE_")}
        env.update(
            {
                "DATABASE_URL": url,
                "AFFILIATE_MIGRATE": "0",
                "AFFILIATE_LOG_LEVEL": "warning",
                "AFFILIATE_CLIENT_IP_HEADER": "X-Forwarded-For",
                # The load comes from loopback: its X-Forwarded-For is believed from there.
                "AFFILIATE_TRUSTED_PROXIES": "127.0.0.1/32",
                "AFFILIATE_PUBLIC_URL": "http://127.0.0.1",
            }
        )
        key = (
            subprocess.run(
                [sys.executable, "-m", "service", "keys", "create", "--role", "admin"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
            .stdout.strip()
            .splitlines()[-1]
        )

        script = str(Path(tmp) / "visitors.lua")
        Path(script).write_text(WRK_SCRIPT.replace("{UA}", USER_AGENT))
        print(
            f"client={client} concurrency={args.concurrency} rounds={args.rounds} "
            f"seconds={args.seconds} cpus={os.cpu_count()} on 127.0.0.1",
            flush=True,
        )
        for mode in args.modes.split(","):
            env_mode = {**env, "AFFILIATE_CLICK_DURABILITY": NATS_MODES.get(mode, mode)}
            if mode in NATS_MODES:
                if nats_url is None:
                    nats_url, nats_proc = start_nats(tmp)
                env_mode.update(AFFILIATE_CLICK_LOG=nats_url, AFFILIATE_CLICK_STREAM=stream)
            svc_port = free_port()
            svc = uvicorn("service.app:create_asgi", svc_port, env_mode, "--factory")
            procs.append(svc)
            wait_ready(svc_port, "/readyz", deadline)
            code, location = _setup_link(svc_port, key)
            answered = 1  # the setup redirect
            bare_port = free_port()
            bare = uvicorn(
                "redirect:bare_app",
                bare_port,
                {**env, "BENCH_LOCATION": location},
                "--app-dir",
                str(ROOT / "bench"),
            )
            procs.append(bare)
            wait_ready(bare_port, "/", deadline)
            apps = [("bare", bare_port), ("service", svc_port)]
            floor = None
            if mode == "durable":
                # The durable floor: its own link, so that each app's clicks are counted apart.
                floor_code, _ = _setup_link(svc_port, key, "floor")
                floor_port = free_port()
                floor_proc = uvicorn(
                    "redirect_floor:floor_app",
                    floor_port,
                    {
                        **env,
                        "BENCH_LOCATION": location,
                        "BENCH_FLOOR_CODE": floor_code,
                        "BENCH_FLOOR_DATABASE_URL": _plain(url),
                    },
                    "--app-dir",
                    str(ROOT / "bench"),
                )
                procs.append(floor_proc)
                wait_ready(floor_port, "/", deadline)
                floor = FloorRounds(url, floor_code, floor_proc)
                apps.insert(1, ("floor", floor_port))
            path = f"/r/{code}?sub1=bench"

            def load(port: int, seconds: float, path: str = path) -> dict[str, Any]:
                if client == "wrk":
                    return load_wrk(port, path, args.concurrency, seconds, script)
                return load_python(port, path, args.concurrency, seconds)

            results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in apps}
            cpu = DatabaseCpu(url)
            clicks_before = asyncio.run(_count_clicks(url, code))
            asyncio.run(cpu.start())
            svc_cpu = process_seconds(svc.pid)
            for rnd in range(args.rounds):
                order = apps if rnd % 2 == 0 else apps[::-1]
                for name, port in order:
                    if time.monotonic() + 2 * args.seconds > deadline:
                        raise TimeoutError("the run's time bound was reached")
                    if name == "floor":
                        assert floor is not None
                        floor.begin()
                    warm = load(port, args.warmup)
                    result = load(port, args.seconds)
                    if name == "service":
                        answered += warm["answered_302"] + result["answered_302"]
                    elif name == "floor":
                        assert floor is not None
                        floor.end(warm, result)
                    results[name].append(result)
                    print(f"[{mode}] round {rnd + 1} {name:7s} {_fmt(result)}", flush=True)
            if mode in NATS_MODES:
                committed_live = asyncio.run(_count_clicks(url, code))
                _wait_loaded(url, code, answered, deadline)
                cpu_used = asyncio.run(cpu.stop())
                svc_cpu = process_seconds(svc.pid) - svc_cpu
                cpu_clicks = asyncio.run(_count_clicks(url, code)) - clicks_before
            else:
                # Durable: every answered click is committed; wrk's unread in-flight ones
                # are committed moments later, so the count comes after the CPU reading.
                cpu_used = asyncio.run(cpu.stop())
                svc_cpu = process_seconds(svc.pid) - svc_cpu
                committed_live = asyncio.run(_count_clicks(url, code))
                cpu_clicks = committed_live - clicks_before
            if cpu_used is not None and floor is not None:
                # The floor's rounds are not the service's work.
                cpu_used = (cpu_used[0] - floor.database[0], cpu_used[1] - floor.database[1])
            stop(svc)
            stop(bare)
            committed = asyncio.run(_count_clicks(url, code))

            b, s = _median_round(results["bare"]), _median_round(results["service"])
            errors = sum(r["other"] for r in results["service"])
            print(f"[{mode}] bare ASGI app   {_fmt(b)}   (median of {args.rounds} rounds)")
            print(f"[{mode}] redirect        {_fmt(s)}   (median of {args.rounds} rounds)")
            print(f"[{mode}] ratio redirect/bare = {s['rps'] / b['rps']:.2f}x")
            print(
                f"[{mode}] clicks committed {committed} vs 302s answered {answered} "
                f"(committed at end of load: {committed_live}; non-302 answers: {errors})",
                flush=True,
            )
            if floor is not None:
                stop(floor.proc)
                f = _median_round(results["floor"])
                floor_committed = asyncio.run(_count_clicks(url, floor.code))
                print(f"[{mode}] durable floor   {_fmt(f)}   (median of {args.rounds} rounds)")
                print(
                    f"[{mode}] ratio floor/bare = {f['rps'] / b['rps']:.2f}x, "
                    f"redirect/floor = {s['rps'] / f['rps']:.2f}x (floor clicks committed "
                    f"{floor_committed} vs 302s answered {floor.answered})",
                    flush=True,
                )
                if floor.clicks > 0:
                    print(
                        f"[{mode}] floor CPU per click: {floor.seconds / floor.clicks * 1e6:.0f} us"
                        f" in its uvicorn process ({floor.seconds:.2f} s over {floor.clicks} clicks)"
                    )
            print(_fmt_cpu(mode, cpu_used, cpu_clicks), flush=True)
            print(_fmt_service_cpu(mode, svc_cpu, cpu_clicks), flush=True)
            if client == "wrk" and committed > answered:
                print(
                    f"[{mode}] note: wrk drops up to {args.concurrency} in-flight responses per "
                    "run at its deadline; their clicks are committed but the 302s go unread"
                )
        return 0
    finally:
        for proc in procs:
            stop(proc)
        if nats_url is not None:
            asyncio.run(_delete_stream(nats_url, stream))
        if nats_proc is not None:
            stop(nats_proc)
        if dropped is not None:
            asyncio.run(_drop_database(*dropped))
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--modes", default="durable,async,nats")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 1024 or not 1 <= args.rounds <= 10:
        parser.error("concurrency must be 1-1024 and rounds 1-10")
    if not 0.5 <= args.seconds <= 60:
        parser.error("seconds must be 0.5-60")
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"modes are {', '.join(MODES)}; not {', '.join(sorted(unknown))}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
