"""`aftersales ingest --format douyin` end to end: a feed mixing push bodies and ledger
command lines, its summary and refusals, the `discrepancies` command with its filters and
formats, the scorecard's counts, and the read models equal to a rebuild."""

from __future__ import annotations

import json
from pathlib import Path

from tests.douyin_bodies import (
    BIG,
    DAY,
    HOUR,
    SHOP,
    T0,
    aftersale,
    body,
    paid,
    requested,
    ts,
)
from tests.e2e.test_cli import db, run

__all__ = ["db"]  # the store fixture, shared with test_cli


def test_a_douyin_feed_is_ingested_reconciled_and_reported(tmp_path: Path, db: str) -> None:
    lines = [*requested(0),
             # the merchant's approval shown a day after the 48 h deadline
             body(aftersale(202, "late", T0 + 5 * DAY + HOUR)),
             # a deadline the platform gives, already past when it arrives
             body(aftersale(209, "exp", None, status_deadline=ts(T0 + 4 * DAY + HOUR)),
                  received_at=T0 + 5 * DAY + 2 * HOUR),
             body(paid("new", 9)),  # an order the ledger never placed
             requested(0)[-1]]  # delivered again
    (tmp_path / "feed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = run("ingest", "--format", "douyin", "feed.jsonl", "--db", db, "--allow-future",
              cwd=tmp_path)
    assert out.returncode == 1  # a message was reported
    assert out.stderr.splitlines() == [
        "line 8 (msg new, tag 101 TradePaid): REPORTED: TradePaid: order 9 is not in the "
        "ledger: place it first, from an order export or a place_order line (the push "
        "carries no amounts); then `aftersales feed retry`"]
    assert out.stdout.splitlines()[1] == "projected 8 events into the read models"
    summary = out.stdout.splitlines()[0]
    assert summary.startswith("9 lines: 8 messages and 1 ledger commands; 7 applied (2 "
                              "reconciled), 1 decided before, 0 ignored, 1 reported")
    found = json.loads(run("discrepancies", "--format", "json", "--db", db,
                           cwd=tmp_path).stdout)
    assert [(d["discrepancy"], d["fact"], d["ref"], d["order_id"]) for d in found] == [
        ("time", "approved", "late", str(BIG)), ("deadline", "deadline", "exp", str(BIG))]
    only = json.loads(run("discrepancies", "--kind", "deadline", "--format", "json",
                          "--db", db, cwd=tmp_path).stdout)
    assert [d["ref"] for d in only] == ["exp"]
    assert json.loads(run("discrepancies", "--merchant", "NOBODY", "--format", "json",
                          "--db", db, cwd=tmp_path).stdout) == []
    table = run("discrepancies", "--db", db, cwd=tmp_path).stdout.splitlines()
    assert table[0].split()[:3] == ["reported_at", "discrepancy", "merchant_id"]
    assert table[1].startswith("2026-03-06 11:00:00+08:00  time")
    report = json.loads(run("report", "--format", "json", "--db", db, cwd=tmp_path).stdout)
    assert (report[0]["merchant_id"], report[0]["discrepancies"],
            report[0]["platform_agreed"]) == (str(SHOP), 2, 0)
    verify = run("verify", "--db", db, cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "the read models equal a rebuild" in verify.stdout
    again = run("ingest", "--format", "douyin", "feed.jsonl", "--db", db, "--allow-future",
                cwd=tmp_path)
    assert "0 applied (0 reconciled), 9 decided before" in again.stdout
    assert again.returncode == 0 and again.stderr == ""  # the reported one is not retold
    (tmp_path / "export.jsonl").write_bytes(json.dumps({
        "command": "place_order", "order_id": "9", "at": T0.isoformat(), "payment": "online",
        "merchant_id": str(SHOP), "user_id": "U9", "goods_amount": 100}).encode() + b"\n")
    assert run("ingest", "export.jsonl", "--db", db, cwd=tmp_path).returncode == 0
    retried = run("feed", "retry", "--db", db, cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith("1 reported messages decided again: 1 applied")
    history = json.loads(run("history", "9", "--json", "--db", db, cwd=tmp_path).stdout)
    assert [e["event"] for e in history][-1] == "PaymentReceived"


def test_the_douyin_demo_and_its_generated_feed(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'd.db'}"
    demo = run("demo", "--platform", "douyin", "--orders", "80", "--db", store,
               cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "demo: a Douyin feed of 80 orders of one shop" in demo.stdout
    assert "reconciliation: " in demo.stdout and " agree, " in demo.stdout
    feed = run("gen", "--platform", "douyin", "--orders", "80", cwd=tmp_path).stdout
    (tmp_path / "feed.jsonl").write_text(feed)
    again = run("ingest", "--format", "douyin", "feed.jsonl", "--db", store,
                cwd=tmp_path)
    assert "0 applied (0 reconciled)" in again.stdout  # the demo's feed, line for line
    assert again.returncode == 0 and again.stderr == ""
