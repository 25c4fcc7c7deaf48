"""Ingesting a command file: refusals and store failures are reported per line; it goes on."""

from __future__ import annotations

import json

from aftersales import CommandRefused, Ledger
from aftersales.ingest import ingest

AT = "2026-03-01T10:00:00+08:00"
PLACE = {"command": "place_order", "order_id": "D1", "at": AT, "payment": "cod",
         "merchant_id": "M1", "user_id": "U1", "goods_amount": 100}


def run(ledger: Ledger, *lines: bytes, batch: int = 500) -> list[tuple[int, str]]:
    """The (line, code) of each refused line."""
    refused: list[tuple[int, str]] = []

    def on_refused(n: int, e: CommandRefused) -> None:
        refused.append((n, e.code))

    ingest(ledger, lines, on_refused, batch=batch)
    return refused


def test_a_byte_order_mark_is_not_an_error(ledger: Ledger) -> None:
    refused = run(ledger, b"\xef\xbb\xbf" + json.dumps(PLACE).encode())
    assert refused == []
    assert ledger.get_order("D1") is not None


def test_blank_lines_are_skipped_and_long_lines_refused(ledger: Ledger) -> None:
    refused = run(ledger, b"\n", b"   \n", b"{" + b" " * 20_000 + b"}\n")
    assert refused == [(3, "INPUT")]


def test_store_failures_are_reported_per_line_and_ingest_goes_on(store_url: str) -> None:
    never_retry = Ledger(store_url, max_retries=0)  # every order command gives up at once
    refused = run(never_retry, json.dumps(PLACE).encode(), b"nonsense",
                  json.dumps({**PLACE, "order_id": "D2"}).encode(), batch=1)
    assert refused == [(1, "STORE"), (2, "INPUT"), (3, "STORE")]
    assert never_retry.get_order("D1") is None
    never_retry.close()
