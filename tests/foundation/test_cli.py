"""The command line, run as a user would: separate processes, a real server."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, database_url):
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env["AFFILIATE_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    env.pop("AFFILIATE_MIGRATE", None)
    return env


def _run(args, env, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_keys_create_prints_a_working_key_last(cli_env):
    out = _run(["keys", "create", "--role", "admin", "--name", "ci"], cli_env)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("aff_") and " " not in key
    listed = _run(["keys", "list"], cli_env)
    assert key.split("_")[1] in listed.stdout
    pytest.cli_admin_key = key  # used by the serve test below


def test_keys_create_refuses_a_partner_key_without_partner(cli_env):
    out = _run(["keys", "create", "--role", "partner"], cli_env)
    assert out.returncode == 2 and "partner_id" in out.stderr


def _serve(env):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    ready = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    return proc, port, ready


def test_serve_answers_readyz_and_the_key_works(cli_env):
    proc, port, ready = _serve(cli_env)
    try:
        assert ready is not None and ready.status_code == 200, ready and ready.text
        key = getattr(pytest, "cli_admin_key", None)
        if key:
            r = httpx.get(
                f"http://127.0.0.1:{port}/v1/programs",
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_embedded_server_start_stop_and_reuse(tmp_path):
    """Without DATABASE_URL, migrate starts an embedded server, and a second run reuses it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env["AFFILIATE_DATA_DIR"] = str(tmp_path / "data")
    first = _run(["keys", "create", "--role", "admin"], env)
    assert first.returncode == 0, first.stderr
    second = _run(["keys", "list"], env)
    assert second.returncode == 0, second.stderr
    assert first.stdout.strip().splitlines()[-1].split("_")[1] in second.stdout
    assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()


def test_serve_on_embedded_server_stops_it_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env["AFFILIATE_DATA_DIR"] = str(tmp_path / "data")
    proc, _, ready = _serve(env)
    try:
        assert ready is not None and ready.status_code == 200
        assert (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()


def test_demo_loads_traffic_and_prints_working_keys(cli_env):
    out = _run(["demo"], cli_env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "curl -i" in out.stdout and "14 sales" in out.stdout
    keys = dict(
        line.split()[:2]
        for line in out.stdout.splitlines()
        if line.startswith("  ") and "aff_" in line and "curl" not in line
    )
    assert set(keys) == {"admin", "merchant", "partner", "finance"}
    proc, port, ready = _serve(cli_env)
    try:
        assert ready is not None and ready.status_code == 200
        base = f"http://127.0.0.1:{port}"
        mine = httpx.get(
            f"{base}/v1/commissions", headers={"Authorization": f"Bearer {keys['partner']}"}
        )
        assert mine.status_code == 200 and mine.json()["items"]
        listed = httpx.get(
            f"{base}/v1/conversions", headers={"Authorization": f"Bearer {keys['admin']}"}
        )
        assert listed.status_code == 200 and listed.json()["items"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _postmaster_pid(pgdata: Path) -> int | None:
    path = pgdata / "postmaster.pid"
    return int(path.read_text().split()[0]) if path.exists() else None


def _postmasters_of(pgdata: Path) -> list[int]:
    """Running postgres processes serving this data directory."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if proc.info["name"] == "postgres" and str(pgdata) in cmdline:
            found.append(proc.pid)
    return found


def test_embedded_server_orphaned_by_kill_9_is_stopped_by_the_next_clean_stop(tmp_path):
    """kill -9 leaves the postmaster running; the next start adopts it, its clean stop ends it."""
    import psutil

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env["AFFILIATE_DATA_DIR"] = str(tmp_path / "data")
    pgdata = (tmp_path / "data" / "pgdata").resolve()
    proc, _, ready = _serve(env)
    try:
        assert ready is not None and ready.status_code == 200
        orphan = _postmaster_pid(pgdata)
        assert orphan is not None
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert psutil.pid_exists(orphan), "the postmaster outlives a kill -9 of the service"

    proc, _, ready = _serve(env)
    try:
        assert ready is not None and ready.status_code == 200
        assert _postmaster_pid(pgdata) == orphan  # adopted, not a second server
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    deadline = time.monotonic() + 10
    while _postmasters_of(pgdata) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _postmasters_of(pgdata)
    for pid in left:  # never leave a server behind, even when the test fails
        psutil.Process(pid).terminate()
    assert left == []
    assert not (pgdata / "postmaster.pid").exists()
