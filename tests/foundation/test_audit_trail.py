"""The audit trail is JSON and keeps no secrets: payout details appear as fingerprints."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from service import audit
from tests.factories import create_partner

IBAN = "DE89370400440532013000"
NEW_IBAN = "FR1420041010050500013M02606"


async def _rows(database_url: str, object_id: str) -> list[tuple[str, str]]:
    """(action, data as the database holds it) of an object, oldest first."""
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT action, data::text AS data FROM audit_events WHERE object_id = $1 "
            "ORDER BY created_at, id",
            uuid.UUID(object_id),
        )
    finally:
        await conn.close()
    return [(r["action"], r["data"]) for r in rows]


async def test_payout_details_are_fingerprinted_never_stored(client, admin, database_url):
    partner = await create_partner(
        client, admin, payout_details={"iban": IBAN}, metadata={"tier": "gold"}
    )
    r = await client.patch(
        f"/v1/partners/{partner['id']}",
        json={"payout_details": {"iban": NEW_IBAN}, "metadata": {"tier": "silver", "n": 2}},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    rows = await _rows(database_url, partner["id"])
    assert [action for action, _ in rows] == ["partner.created", "partner.updated"]
    for _, text in rows:
        assert IBAN not in text and NEW_IBAN not in text
        assert "0532013000" not in text and "13M02606" not in text
    created = json.loads(rows[0][1])
    updated = json.loads(rows[1][1])
    old_print = audit.fingerprint({"iban": IBAN})
    new_print = audit.fingerprint({"iban": NEW_IBAN})
    assert created["payout_details"] == old_print
    assert updated["payout_details"] == {"from": old_print, "to": new_print}
    assert old_print != new_print and old_print.startswith("sha256:")
    # The rest of the delta is JSON as it was sent, not a Python repr of it.
    assert updated["metadata"] == {"from": {"tier": "gold"}, "to": {"tier": "silver", "n": 2}}


async def test_audit_data_is_json_safe(app, database_url):
    object_id = uuid.uuid4()
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    async with app.state.sessionmaker() as session:
        audit.record(
            session,
            None,
            "test.recorded",
            "test",
            object_id,
            {"amount": Decimal("-12.30"), "id": object_id, "at": at, "ids": (object_id,)},
        )
        await session.commit()
    ((_, text),) = await _rows(database_url, str(object_id))
    assert json.loads(text) == {
        "amount": "-12.30",
        "id": str(object_id),
        "at": "2026-03-01T12:30:00Z",
        "ids": [str(object_id)],
    }
