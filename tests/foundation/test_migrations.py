import asyncio

import asyncpg

from service import migrate


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_upgrade_downgrade_upgrade(pg_server):
    url = await pg_server.new_database()
    await asyncio.to_thread(migrate.upgrade, url)
    full = await _tables(url)
    assert {"programs", "partners", "api_keys", "commission_entries", "payouts"} <= full
    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert await _tables(url) <= {"alembic_version"}
    await asyncio.to_thread(migrate.upgrade, url)
    assert await _tables(url) == full


def test_migration_files_are_dated_and_reversible():
    from pathlib import Path

    files = sorted(Path(migrate.ROOT / "migrations" / "versions").glob("*.py"))
    assert files
    for f in files:
        assert f.name[:16].replace("-", "").isdigit() or f.name[:4].isdigit(), f.name
        text = f.read_text()
        assert "def downgrade" in text and "lock_timeout" in text
