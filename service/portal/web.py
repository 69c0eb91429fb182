"""What every portal page shares: templates, the signed-in user, forms, errors as pages.

A page is a template and a route: `@pages.get(path, roles=..., nav="Label")` registers the
route and, with `nav`, its place in the menu of each role that may open it.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from service.auth.deps import check_partner_active
from service.db import Session
from service.errors import (
    Forbidden,
    ProblemError,
    Unauthorized,
    ValidationFailed,
    validation_errors,
)
from service.kit.text import MESSAGE, unstorable
from service.models import Role
from service.portal import csrf, format
from service.portal.sessions import COOKIE, SignedIn, signed_in

ENV = Environment(
    loader=PackageLoader("service.portal", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(format.FILTERS)

# The referrer would carry a sign-in token; frames and inline script are not needed.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
HOME = {
    Role.partner: "/portal/partner",
    Role.admin: "/portal/manage",
    Role.finance: "/portal/finance",
}
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    roles: frozenset[Role]
    order: int


NAV: list[NavItem] = []


def nav_for(role: Role) -> list[NavItem]:
    """The menu of a role, by each page's place."""
    return sorted((item for item in NAV if role in item.roles), key=lambda i: i.order)


def secure_cookies(public_url: str) -> bool:
    """Secure cookies, except over plain http to this machine (development)."""
    parts = urlsplit(public_url)
    return not (parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS)


def render(
    request: Request,
    template: str,
    who: SignedIn | None = None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page from its template, inside the base layout."""
    html = ENV.get_template(template).render(
        request=request,
        who=who,
        role=who.principal.role if who else None,
        nav=nav_for(who.principal.role) if who else [],
        path=request.url.path,
        csrf_token=csrf.token_for(who.token) if who else "",
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


class SignInRequired(Unauthorized):
    def __init__(self) -> None:
        super().__init__("sign in with the link you were sent to see this page")


class PortalRoute(APIRoute):
    """Routes whose errors are pages (with the same status) instead of problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = validation_errors(exc)
                return render(
                    request,
                    "error.html",
                    getattr(request.state, "portal_user", None),
                    status_code=422,
                    title="Validation failed",
                    detail="; ".join(f"{e['field']}: {e['message']}" for e in errors[:3]),
                    errors=errors,
                    signed_out=False,
                )
            except ProblemError as exc:
                who = getattr(request.state, "portal_user", None)
                headers = {k: v for k, v in (exc.headers or {}).items() if k != "WWW-Authenticate"}
                response = render(
                    request,
                    "error.html",
                    who,
                    status_code=exc.status,
                    title=exc.title,
                    detail=exc.detail,
                    errors=exc.errors or [],
                    signed_out=isinstance(exc, SignInRequired),
                )
                response.headers.update(headers)
                return response

        return handle


def router() -> APIRouter:
    """A router for portal pages (not in the API's spec)."""
    return APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    found = unstorable(values)
    if found:
        raise ValidationFailed([{"field": found, "message": MESSAGE}])
    return values


def user(*roles: Role) -> Callable[..., Awaitable[SignedIn]]:
    """The signed-in user when its role may open the page; on POST, the form's CSRF checked.

    A partner posts only while its partner is active, as its key writes only then.
    """
    allowed = frozenset(roles)

    async def _check(request: Request, session: Session) -> SignedIn:
        who = await signed_in(session, request.cookies.get(COOKIE))
        if who is None:
            raise SignInRequired()
        request.state.portal_user = who
        if who.principal.role not in allowed:
            raise Forbidden("this page is not open to your role")
        if request.method == "POST":
            form = await _form(request)
            if not csrf.valid(who.token, form.get(csrf.FIELD)):
                raise Forbidden("the form's CSRF token is missing or wrong; reload the page")
            request.state.form = form
            if who.principal.role == Role.partner:
                await check_partner_active(session, who.principal)
        return who

    return _check


def form(request: Request) -> dict[str, str]:
    """The fields of the posted form (read and checked by `user`)."""
    return dict(getattr(request.state, "form", {}))


Form = Annotated[dict[str, str], Depends(form)]
Partner = Annotated[SignedIn, Depends(user(Role.partner))]
Manager = Annotated[SignedIn, Depends(user(Role.admin))]
Finance = Annotated[SignedIn, Depends(user(Role.admin, Role.finance))]
Anyone = Annotated[SignedIn, Depends(user(Role.admin, Role.finance, Role.partner))]


def register(label: str, path: str, roles: Sequence[Role], order: int) -> None:
    """Put a page in the menu of these roles, at its place (lower first)."""
    NAV.append(NavItem(label, "/portal" + path, frozenset(roles), order))


def idempotency_key() -> str:
    """A fresh key for a form whose double submission must act once."""
    return "portal-" + secrets.token_urlsafe(18)


def parse(model: type[Any], values: dict[str, Any]) -> Any:
    """A request model from form values (blank fields left out); a page naming each field."""
    from pydantic import ValidationError

    data = {k: v for k, v in values.items() if k != csrf.FIELD and v != ""}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "form",
                "message": str(e["msg"]).removeprefix("Value error, "),
            }
            for e in exc.errors()
        ]
        raise ValidationFailed(errors) from None
