"""The portal: server-rendered pages for partners, program managers and finance.

Adding a page: a template under templates/, a route in the audience's module, and a
`web.register(...)` line to put it in the menu.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from service.portal import finance, manager, partner, signin

STATIC_DIR = Path(__file__).parent / "static"
PAGES: list[APIRouter] = [signin.pages, partner.pages, manager.pages, finance.pages]
