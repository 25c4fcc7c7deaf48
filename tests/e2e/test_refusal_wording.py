"""Refusals a person can act on (issue 26, items 10 and 11): a remembered refusal says it
is remembered and how to have the command decided anew; an identifier refused says which
character and which characters are allowed, not a regular expression; a Douyin message's
refusal names the platform's own time field (`pay_time`), not the ledger's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.douyin_bodies import HOUR, T0, body, paid, place
from tests.e2e.test_cli import AT, db, jsonl, run

__all__ = ["db"]

pytestmark = pytest.mark.slow

PLACE = {"command": "place_order", "order_id": "Z1", "at": AT, "payment": "online",
         "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900}
SHIP = {"command": "ship", "order_id": "Z1", "at": "2026-03-01T11:00:00+08:00",
        "carrier": "SF", "tracking_no": "SF1", "command_id": "ship-1"}
PAY = {"command": "pay", "order_id": "Z1", "at": "2026-03-01T10:30:00+08:00"}


def test_a_remembered_refusal_says_so_and_how_to_retry(tmp_path: Path, db: str) -> None:
    (tmp_path / "early.jsonl").write_text(jsonl(PAY, PLACE, SHIP))
    first = run("ingest", "early.jsonl", "--db", db, cwd=tmp_path)
    assert first.returncode == 1
    assert first.stderr.splitlines() == [
        "line 1: UNKNOWN-ORDER: order Z1 was never placed",
        "line 3: FLOW: ship needs order status paid, not awaiting_payment"]
    # The order moves on: `pay` (never remembered: the order was not placed) is decided
    # afresh; `ship`, decided on the order's history, is answered as it was, saying so.
    again = run("ingest", "early.jsonl", "--db", db, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.splitlines() == [
        "line 3: FLOW: ship needs order status paid, not awaiting_payment (remembered: "
        "command_id ship-1 was refused so when first decided, and a command is decided "
        "once; to have it decided on the order as it is now, send it with a new "
        "command_id)"]
    status = json.loads(run("status", "Z1", "--json", "--db", db, cwd=tmp_path).stdout)
    assert status["order_status"] == "paid"
    retried = run("ingest", "-", "--db", db, cwd=tmp_path,
                  stdin=jsonl({**SHIP, "command_id": "ship-2"}))
    assert retried.returncode == 0, retried.stderr
    status = json.loads(run("status", "Z1", "--json", "--db", db, cwd=tmp_path).stdout)
    assert status["order_status"] == "shipped"


def test_an_identifier_refused_names_the_character_and_what_is_allowed(
        tmp_path: Path) -> None:
    lines = jsonl({**PLACE, "order_id": "Z 1"}, {**PLACE, "merchant_id": "商家1"},
                  {**PLACE, "user_id": "U1\u001b[31m"}, {**PLACE, "currency": "cny"})
    found = run("ingest", "-", "--db", f"sqlite:///{tmp_path / 'l.db'}", cwd=tmp_path,
                stdin=lines)
    allowed = ("an id holds only letters A-Z and a-z, digits 0-9 and the signs _ . : - (no "
               "spaces)")
    assert found.stderr.splitlines() == [
        f"line 1: INPUT: field 'order_id': 'Z 1' holds a space at character 2: {allowed}",
        f"line 2: INPUT: field 'merchant_id': '商家1' holds '商' (U+5546) at character 1: "
        f"{allowed}",
        "line 3: INPUT: field 'user_id': 'U1\\x1b[31m' holds '\\x1b' at character 3: "
        f"{allowed}",
        "line 4: INPUT: field 'currency': must be three capital letters, a currency code "
        "such as CNY, got 'cny'"]
    assert "pattern" not in found.stderr and "\x1b" not in found.stderr


def test_a_douyin_refusal_names_the_platforms_time_field(tmp_path: Path) -> None:
    feed = [place(), body(paid("early", at=T0 - HOUR)),
            body(paid("unknown", "55", at=T0 - HOUR))]
    (tmp_path / "feed.jsonl").write_bytes(b"\n".join(feed) + b"\n")
    found = run("ingest", "--format", "douyin", "feed.jsonl", "--db",
                f"sqlite:///{tmp_path / 'l.db'}", "--allow-future", cwd=tmp_path)
    said = [line for line in found.stderr.splitlines() if "msg early" in line]
    assert said == [
        f"line 2 (msg early, tag 101 TradePaid): TIME: pay_time {int((T0 - HOUR).timestamp())} "
        f"({(T0 - HOUR).isoformat()}) is before the order's latest event at {T0.isoformat()}"]
