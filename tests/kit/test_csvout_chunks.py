"""A streamed CSV export goes out in chunks of many lines, not a body message per line."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.kit import csvout


@given(st.lists(st.text(max_size=40)), st.integers(min_value=1, max_value=200))
def test_chunks_keep_every_line_in_order_and_fill_each_chunk(lines: list[str], size: int):
    out = list(csvout.chunks(lines, size))
    assert "".join(out) == "".join(lines)
    assert all(out), "no empty chunk"
    assert all(len(chunk) >= size for chunk in out[:-1])
    # And no more of them than whole sizes in the text, plus one.
    assert len(out) <= sum(map(len, lines)) // size + 1


async def test_a_large_export_is_a_few_body_messages():
    rows = [[f"partner {n}", n] for n in range(50_000)]
    body = csvout.lines(["name", "amount"], rows, frozenset({"amount"}))
    response = csvout.response(body, "big.csv")
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "method": "GET"}
    await response(scope, receive, send)
    parts = [m["body"] for m in messages if m["type"] == "http.response.body" and m["body"]]
    text = b"".join(parts).decode()
    assert text == csvout.render(["name", "amount"], rows, frozenset({"amount"}))
    assert len(text) > 10 * csvout.CHUNK_CHARS
    assert len(parts) <= len(text) // csvout.CHUNK_CHARS + 1
