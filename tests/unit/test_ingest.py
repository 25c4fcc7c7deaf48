"""Ingesting a command file: refusals are reported per line and it goes on; a unit of work
the store keeps failing stops it there."""

from __future__ import annotations

import json

from aftersales import CommandRefused, Ledger
from aftersales.ingest.serial import ingest

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


def test_a_unit_the_store_keeps_failing_stops_the_ingest_there(store_url: str) -> None:
    never_retry = Ledger(store_url, max_retries=0)  # every order command gives up at once
    refused: list[tuple[int, str]] = []
    report = ingest(never_retry, [json.dumps(PLACE).encode(), b"nonsense",
                                  json.dumps({**PLACE, "order_id": "D2"}).encode()],
                    lambda n, e: refused.append((n, e.code)), batch=1)
    assert report.stopped is not None and report.stopped.line == 1
    assert "gave up after 0 conflicting attempts" in report.stopped.reason
    assert refused == []  # nothing after the failed line was decided, not even line 2
    assert never_retry.get_order("D1") is None and never_retry.get_order("D2") is None
    assert report.lines == 0
    message = report.stop_message()
    assert message is not None and message.startswith("stopped before line 1: ")
    never_retry.close()


def test_a_rerun_refuses_a_refused_line_again_though_later_lines_would_let_it_pass(
        ledger: Ledger) -> None:
    """Each command is decided once: `ship` before the payment is refused; after the
    payment it would pass, but a re-run of the file (after a crash, or a store failure)
    must give what the uninterrupted run gave: one by one and in group commit."""
    for batch, order_id in ((1, "D1"), (500, "D2")):
        lines = [json.dumps(x).encode() for x in (
            {**PLACE, "payment": "online", "order_id": order_id},
            {"command": "ship", "order_id": order_id, "at": AT, "carrier": "SF",
             "tracking_no": "S1"},
            {"command": "pay", "order_id": order_id, "at": AT})]
        assert run(ledger, *lines, batch=batch) == [(2, "FLOW")]
        assert run(ledger, *lines, batch=batch) == [(2, "FLOW")]  # again, as it was
        order = ledger.get_order(order_id)
        assert order is not None and order.status == "paid" and order.version == 2
