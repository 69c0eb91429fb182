"""The application: FastAPI for /v1 and ops, behind plain ASGI for the redirect."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from service import migrate
from service.agreements.api import router as agreements_router
from service.auth.api import router as api_keys_router
from service.auth.keys import SESSION_CACHE, KeyCache
from service.auth.limits import AddressLimiter, AuthFailureLimiter
from service.config import Settings, get_settings
from service.conversions.api import LEAN_ROUTES as conversion_lean_routes
from service.conversions.api import router as conversions_router
from service.db import create_engine, create_sessionmaker, resolve_database_url
from service.errors import install_database_error_handlers, install_error_handlers
from service.events.api import router as events_router
from service.events.outbox import SESSION_SUBSCRIPTIONS, SubscriptionCache
from service.fraud.api import router as fraud_router
from service.health.api import router as health_router
from service.health.metrics import MetricsMiddleware
from service.integrations.api import hooks_router
from service.integrations.api import router as integrations_router
from service.jobs.worker import Worker
from service.kit.bodylimit import BodyLimit
from service.kit.clientip import ClientAddress
from service.kit.leanroute import Admission, LeanJsonRoute
from service.kit.text import storable_input
from service.ledger.api import router as commissions_router
from service.links.api import promo_codes_router
from service.links.api import router as links_router
from service.partnering.adjustments.api import router as adjustments_router
from service.partnering.applications.api import public_router as applications_public_router
from service.partnering.applications.api import router as applications_router
from service.partnering.deals.api import router as deals_router
from service.partnering.disputes.api import router as disputes_router
from service.partnering.kpis.api import report_router as kpi_report_router
from service.partnering.kpis.api import router as kpi_targets_router
from service.partners.api import router as partners_router
from service.payouts.api import router as payouts_router
from service.portal import PAGES, STATIC_DIR
from service.portal.api import router as portal_links_router
from service.programs.api import router as programs_router
from service.programs.cache import SESSION_PROGRAMS, ProgramCache
from service.redirect.asgi import RedirectApp
from service.redirect.runtime import RedirectRuntime
from service.reports.api import router as reports_router
from service.secrets_store import load_secrets

log = logging.getLogger(__name__)

# Dependencies of every route that has them: run on each request before any route's own.
REQUEST_CHECKS = (storable_input,)
# Routes served in front of FastAPI's (path, method, body model, handler).
LEAN_ROUTES = conversion_lean_routes

# Requests are matched against the routers in this order, route by route. Conversions come
# first: the busiest API path is found without walking every other router's routes. No
# route of one router answers another's paths (tests/foundation/test_routes.py), so the
# order changes no answer.
ROUTERS = [
    conversions_router,
    health_router,
    api_keys_router,
    programs_router,
    partners_router,
    links_router,
    promo_codes_router,
    payouts_router,
    agreements_router,
    commissions_router,
    reports_router,
    fraud_router,
    integrations_router,
    portal_links_router,
    events_router,
    applications_public_router,
    applications_router,
    deals_router,
    disputes_router,
    adjustments_router,
    kpi_targets_router,
    kpi_report_router,
]


# Objects allocated between the collector's passes (young), young passes per middle pass,
# middle passes per full pass (which also waits for a quarter more long-lived objects).
GC_THRESHOLD = (50_000, 20, 10)


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    """The FastAPI app; its lifespan opens the database (embedded when no URL is given)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedded = None
        url = database_url
        if url is None:
            url, embedded = resolve_database_url(settings)
        if settings.migrate:
            await asyncio.to_thread(migrate.upgrade, url)
        engine = create_engine(url, settings)
        app.state.engine = engine
        # Sessions carry the key cache so that what they commit can clear it (keys.py).
        # ... and the subscriptions cache, which emitting transactions check (events/outbox.py).
        app.state.sessionmaker = create_sessionmaker(
            engine,
            {
                SESSION_CACHE: app.state.key_cache,
                SESSION_SUBSCRIPTIONS: SubscriptionCache(),
                SESSION_PROGRAMS: app.state.program_cache,
            },
        )
        app.state.secrets = await load_secrets(engine, settings)
        # The redirect (outer ASGI app) reads its cache, signer and click writer from here.
        app.state.redirect = await RedirectRuntime.start(
            url,
            settings,
            app.state.secrets,
            also_notify=[app.state.key_cache, app.state.program_cache],
        )
        app.state.click_signer = app.state.redirect.signer
        key_upkeep = asyncio.create_task(app.state.secrets.visitor_keys.maintain())
        worker = None
        if settings.worker:
            worker = Worker(app.state.sessionmaker, settings)
            await worker.start()
        app.state.worker = worker
        # What start-up made (modules, tables, the email lists, caches) lives as long as the
        # app: kept out of the collector's full passes, each of which would walk it all
        # again (about a millisecond of every conversion, measured under load).
        gc.freeze()
        # The collector's default first threshold (700 new objects) makes a request that
        # builds thousands of rows (a payout run over 10,000 partners) pay for dozens of
        # passes, and full ones over all it holds; reference counting frees nearly all of
        # it anyway, so the collector runs only for every GC_THRESHOLD[0] new objects.
        gc.set_threshold(*GC_THRESHOLD)
        try:
            yield
        finally:
            if worker is not None:
                # Attempts in flight finish (or give their leases back) while the pool lives.
                await worker.stop()
            key_upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await key_upkeep
            # Every queued click is flushed before the database goes away.
            await app.state.redirect.close()
            app.state.redirect = None
            await engine.dispose()
            if embedded is not None:
                embedded.stop()

    app = FastAPI(
        title="Affiliate tracking service",
        version="1.0.0",
        description=(
            "Affiliate links and promo codes, click tracking, conversions, commissions "
            "into an append-only ledger, and payouts that reconcile to the cent."
        ),
        lifespan=lifespan,
        dependencies=[Depends(check) for check in REQUEST_CHECKS],
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache()
    app.state.program_cache = ProgramCache()
    app.state.auth_failures = AuthFailureLimiter(settings.auth_failure_limit)
    app.state.application_limiter = AddressLimiter(settings.application_limit, "applications")
    # The same rule as the redirect's (kit/clientip.py): the header counts only via trusted proxies.
    app.state.client_address = ClientAddress(settings.trusted_proxies)
    install_error_handlers(app)
    install_database_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    for pages in PAGES:
        app.include_router(pages)
    app.mount("/portal/static", StaticFiles(directory=STATIC_DIR), name="portal-static")
    # Added as they are, without the app-wide dependencies: a shop's body is read by nothing
    # before its signature is checked (storable_input would parse it).
    app.router.routes.extend(hooks_router.routes)
    # In front of all of them: the hottest writes' common case without FastAPI's work per
    # request, every other request handed on to FastAPI's route (service.kit.leanroute).
    # They take turns by the database pool's size: each holds a connection while it runs.
    admission = Admission(settings.db_pool_size + settings.db_max_overflow + 1)
    app.router.routes[:0] = [
        LeanJsonRoute(
            path,
            method,
            model,
            handler,
            checks=REQUEST_CHECKS,
            fallback=app.router,
            admission=admission,
        )
        for path, method, model, handler in LEAN_ROUTES
    ]
    app.add_middleware(MetricsMiddleware)
    return app


class Served(RedirectApp):
    """What uvicorn serves: the redirect fast path (which reads no body), then the body limit,
    in front of FastAPI.

    `fastapi` is the application behind them, for what needs its state, routes or spec. A
    subclass, not a wrapper: a redirect's coroutine is resumed through one frame less.
    """

    def __init__(self, fastapi: FastAPI, max_body_bytes: int) -> None:
        super().__init__(fastapi, BodyLimit(fastapi, max_body_bytes))


def create_asgi(settings: Settings | None = None, *, database_url: str | None = None) -> Served:
    """The ASGI callable uvicorn serves, over a new FastAPI app (create_app)."""
    settings = settings or get_settings()
    return Served(create_app(settings, database_url=database_url), settings.max_body_bytes)
