"""Signing in by link, and out."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from service.db import Session
from service.models import Role
from service.portal import sessions, web
from service.portal.sessions import COOKIE
from service.portal.web import HEADERS, HOME, Anyone, render

pages = web.router()


@pages.get("")
async def landing(request: Request, session: Session) -> Response:
    """Home: the signed-in user's start page, or how to sign in."""
    who = await sessions.signed_in(session, request.cookies.get(COOKIE))
    if who is not None:
        return RedirectResponse(HOME[who.principal.role], status_code=303, headers=HEADERS)
    return render(request, "landing.html")


@pages.get("/sign-in/{token}")
async def sign_in_page(token: str, request: Request, session: Session) -> Response:
    """The link's page: a button that signs in (a link preview or mail scanner uses nothing)."""
    if not await sessions.link_usable(session, token):
        raise sessions.LinkNotValid()
    return render(request, "sign_in.html", token=token)


@pages.post("/sign-in/{token}")
async def sign_in(token: str, request: Request, session: Session) -> Response:
    """Use the link: a session cookie, then the start page of the role."""
    settings = request.app.state.settings
    session_token, principal = await sessions.sign_in(
        session, token, timedelta(hours=settings.portal_session_hours)
    )
    response = RedirectResponse(HOME[Role(principal.role)], status_code=303, headers=HEADERS)
    response.set_cookie(
        COOKIE,
        session_token,
        max_age=settings.portal_session_hours * 3600,
        path="/portal",
        httponly=True,
        samesite="lax",
        secure=web.secure_cookies(settings.public_url),
    )
    return response


@pages.post("/sign-out")
async def sign_out(request: Request, who: Anyone, session: Session) -> Response:
    """End the session (its key revoked) and forget the cookie."""
    await sessions.sign_out(session, who)
    response = render(request, "signed_out.html")
    response.delete_cookie(COOKIE, path="/portal")
    return response
