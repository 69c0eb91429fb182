"""Running Alembic from code, and asking whether the database is at head."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations and the given database."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate up (blocking; call from a thread inside an event loop)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate down (blocking)."""
    command.downgrade(alembic_config(url), revision)


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The revisions the code expects."""
    script = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://unused/"))
    return frozenset(script.get_heads())


async def current_revisions(conn: AsyncConnection) -> set[str]:
    """The revisions the database is at."""

    def _read(sync_conn: object) -> set[str]:
        ctx = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
        return set(ctx.get_current_heads())

    return await conn.run_sync(_read)
