"""Command line: serve, migrate, keys, portal-link, openapi, demo, worker, click-loader."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import Sequence

from service.config import get_settings


def _database_url() -> tuple[str, object | None]:
    from service.db import resolve_database_url

    return resolve_database_url(get_settings())


def _stop(embedded: object | None) -> None:
    if embedded is not None:
        embedded.stop()  # type: ignore[attr-defined]


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    # uvicorn shuts down gracefully, then re-raises the signal to the handler it found;
    # ours turns it into SystemExit so that the embedded server is stopped below.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)

    from service import migrate

    settings = get_settings()
    url, embedded = _database_url()
    try:
        if settings.migrate:
            migrate.upgrade(url)
        # Workers are other processes: hand them the resolved URL, migrations done.
        os.environ["DATABASE_URL"] = url
        os.environ["AFFILIATE_MIGRATE"] = "0"
        get_settings.cache_clear()
        print(f"serving on http://{args.host}:{args.port}", flush=True)
        uvicorn.run(
            "service.app:create_asgi",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level,
            # A line per redirect costs the hot path real CPU; opt in when wanted.
            access_log=settings.access_log,
            proxy_headers=False,
        )
    finally:
        _stop(embedded)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from service import migrate

    url, embedded = _database_url()
    try:
        if args.downgrade:
            migrate.downgrade(url, args.downgrade)
        else:
            migrate.upgrade(url, args.revision)
    finally:
        _stop(embedded)
    print("migrations applied")
    return 0


async def _with_session(url: str, fn):  # type: ignore[no-untyped-def]
    from service.db import create_engine, create_sessionmaker

    engine = create_engine(url, get_settings())
    try:
        async with create_sessionmaker(engine)() as session:
            result = await fn(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def cmd_keys(args: argparse.Namespace) -> int:
    from service import migrate
    from service.auth import keys
    from service.errors import ProblemError
    from service.models import Role

    url, embedded = _database_url()
    try:
        if get_settings().migrate:
            migrate.upgrade(url)
        if args.keys_cmd == "create":
            role = Role(args.role)

            async def create(session):  # type: ignore[no-untyped-def]
                return await keys.create_key(
                    session,
                    role,
                    program_ids=[uuid.UUID(p) for p in args.program or []],
                    partner_id=uuid.UUID(args.partner) if args.partner else None,
                    name=args.name,
                )

            try:
                row, key = asyncio.run(_with_session(url, create))
            except ProblemError as exc:
                print(f"error: {exc.detail}", file=sys.stderr)
                for err in exc.errors or []:
                    print(f"  {err['field']}: {err['message']}", file=sys.stderr)
                return 2
            print(f"created {role} key {row.id} (prefix {row.prefix}); it is shown once:")
            print(key)
        elif args.keys_cmd == "list":
            rows = asyncio.run(_with_session(url, keys.list_keys))
            for row in rows:
                state = f"revoked {row.revoked_at.isoformat()}" if row.revoked_at else "active"
                bound = row.partner_id or ",".join(str(p) for p in row.program_ids) or "-"
                print(f"{row.id}  {row.prefix}  {row.role:<8}  {bound}  {state}  {row.name or ''}")
        elif args.keys_cmd == "revoke":
            key_id = uuid.UUID(args.id)

            async def revoke(session):  # type: ignore[no-untyped-def]
                return await keys.revoke_key(session, key_id)

            try:
                asyncio.run(_with_session(url, revoke))
            except ProblemError as exc:
                print(f"error: {exc.detail}", file=sys.stderr)
                return 2
            print(f"revoked {key_id}")
    finally:
        _stop(embedded)
    return 0


def cmd_portal_link(args: argparse.Namespace) -> int:
    from service import migrate
    from service.errors import ProblemError
    from service.models import Role
    from service.portal.sessions import issue_link

    try:
        partner_id = uuid.UUID(args.partner) if args.partner else None
    except ValueError:
        print(f"error: --partner {args.partner!r} is not a partner id", file=sys.stderr)
        return 2
    role = Role.partner if partner_id else Role(args.role)
    settings = get_settings()
    url, embedded = _database_url()
    try:
        if settings.migrate:
            migrate.upgrade(url)

        async def issue(session):  # type: ignore[no-untyped-def]
            _, link = await issue_link(
                session, role=role, partner_id=partner_id, by=None, public_url=settings.public_url
            )
            return link

        try:
            link = asyncio.run(_with_session(url, issue))
        except ProblemError as exc:
            print(f"error: {exc.detail}", file=sys.stderr)
            return 2
        print("a sign-in link, valid for 24 hours and used once:")
        print(link)
    finally:
        _stop(embedded)
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from service.app import create_app

    sys.stdout.write(openapi_text(create_app()))
    return 0


def openapi_text(app) -> str:  # type: ignore[no-untyped-def]
    """The spec as committed in openapi/openapi.json."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def cmd_demo(args: argparse.Namespace) -> int:
    from service import migrate
    from service.app import create_asgi
    from service.demo import run_demo

    url, embedded = _database_url()
    try:
        settings = get_settings()
        if settings.migrate:
            migrate.upgrade(url)
        served = create_asgi(settings.model_copy(update={"migrate": False}), database_url=url)
        asyncio.run(run_demo(served, served.fastapi, settings))
    finally:
        _stop(embedded)
    return 0


def cmd_bounties(args: argparse.Namespace) -> int:
    from service.db import create_engine, create_sessionmaker
    from service.kit.time import utc_now
    from service.partnering.bounties import run_click_bounties

    url, embedded = _database_url()

    async def run() -> int:
        engine = create_engine(url, get_settings())
        try:
            return await run_click_bounties(create_sessionmaker(engine), utc_now())
        finally:
            await engine.dispose()

    try:
        written = asyncio.run(run())
    finally:
        _stop(embedded)
    print(f"click bounties: {written} ledger entries written")
    return 0


def cmd_click_loader(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not settings.click_log:
        print("error: click-loader needs AFFILIATE_CLICK_LOG=nats://...", file=sys.stderr)
        return 2
    if settings.database_url is None:
        # An embedded server belongs to one serve process; a loader apart needs the shared one.
        print("error: click-loader needs DATABASE_URL", file=sys.stderr)
        return 2
    asyncio.run(_run_click_loader(settings))
    return 0


async def _run_click_loader(settings) -> None:  # type: ignore[no-untyped-def]
    import asyncpg

    from service.db import to_async_url
    from service.redirect.clickloader import ClickLoader
    from service.redirect.clicklog import connect, ensure_stream
    from service.redirect.runtime import COMMAND_TIMEOUT, asyncpg_dsn

    assert settings.database_url is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await asyncpg.create_pool(
        asyncpg_dsn(to_async_url(settings.database_url)),
        min_size=1,
        max_size=2,
        command_timeout=COMMAND_TIMEOUT,
        server_settings={"timezone": "UTC", "application_name": "affiliate-click-loader"},
    )
    assert pool is not None
    nc = await connect(settings, "affiliate-click-loader")
    try:
        await ensure_stream(nc.jetstream(), settings)
        loader = ClickLoader(nc, pool, settings)
        loader.start()
        print(f"loading clicks from stream {settings.click_stream}", flush=True)
        await stop.wait()
        await loader.close()
    finally:
        with contextlib.suppress(OSError):  # NATS gone: the client's last flush fails
            await nc.close()
        await pool.close()


def cmd_worker(args: argparse.Namespace) -> int:
    from service import migrate
    from service.db import create_engine, create_sessionmaker
    from service.events.outbox import SESSION_SUBSCRIPTIONS, SubscriptionCache
    from service.jobs.worker import run_forever

    settings = get_settings()
    url, embedded = _database_url()
    try:
        if settings.migrate:
            migrate.upgrade(url)

        async def run() -> None:
            engine = create_engine(url, settings)
            try:
                maker = create_sessionmaker(engine, {SESSION_SUBSCRIPTIONS: SubscriptionCache()})
                await run_forever(maker, settings)
            finally:
                await engine.dispose()

        asyncio.run(run())
    finally:
        _stop(embedded)
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m service`."""
    p = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(fn=cmd_serve)

    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.add_argument("--revision", default="heads")
    mig.add_argument("--downgrade", metavar="REVISION", help="migrate down to REVISION")
    mig.set_defaults(fn=cmd_migrate)

    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_cmd", required=True)
    kc = ksub.add_parser("create", help="create a key; it is printed alone on the last line")
    kc.add_argument("--role", required=True, choices=["admin", "finance", "merchant", "partner"])
    kc.add_argument("--program", action="append", help="program id (repeatable)")
    kc.add_argument("--partner", help="partner id, for partner keys")
    kc.add_argument("--name")
    ksub.add_parser("list", help="list keys")
    kr = ksub.add_parser("revoke", help="revoke a key")
    kr.add_argument("id")
    k.set_defaults(fn=cmd_keys)

    pl = sub.add_parser("portal-link", help="print a one-time sign-in link to the portal")
    who = pl.add_mutually_exclusive_group(required=True)
    who.add_argument("--partner", help="partner id: the partner's portal")
    who.add_argument("--role", choices=["admin", "finance"], help="a manager's or finance's portal")
    pl.set_defaults(fn=cmd_portal_link)

    sub.add_parser("openapi", help="print the OpenAPI spec").set_defaults(fn=cmd_openapi)
    sub.add_parser("demo", help="load a demo program with traffic").set_defaults(fn=cmd_demo)
    sub.add_parser(
        "worker", help="run the background jobs (event deliveries) without serving HTTP"
    ).set_defaults(fn=cmd_worker)
    sub.add_parser(
        "bounties", help="pay the click bounties of ended days (safe to run anywhere, any time)"
    ).set_defaults(fn=cmd_bounties)
    sub.add_parser(
        "click-loader", help="load clicks from the NATS click stream into PostgreSQL"
    ).set_defaults(fn=cmd_click_loader)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = parser().parse_args(argv)
    return int(args.fn(args))
