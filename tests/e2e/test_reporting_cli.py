"""Read models from the command line: in-process projection, `project --follow` as its own
process, `rebuild`, `verify`, `violations` and `report`."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from aftersales import Ledger
from projections.database import ReadModels
from projections.schema import order_status
from tests.e2e.test_cli import db, run

__all__ = ["db"]  # the store fixture, shared with test_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def workload(tmp_path: Path) -> Path:
    out = run("gen", "--orders", "150", "--seed", "3", "--days", "25", cwd=tmp_path)
    path = tmp_path / "w.jsonl"
    path.write_text(out.stdout)
    return path


def test_ingest_projects_in_process_and_verify_agrees(tmp_path: Path, workload: Path,
                                                      db: str) -> None:
    assert run("ingest", str(workload), "--db", db, cwd=tmp_path).returncode == 0
    views = ReadModels(db)
    ledger = Ledger(db)
    assert views.max_tracking_id("aftersales") == ledger.recorder.max_notification_id()
    ok = run("verify", "--db", db, cwd=tmp_path)
    assert ok.returncode == 0 and "equal a rebuild" in ok.stdout
    with views.engine.begin() as conn:
        conn.execute(update(order_status).where(order_status.c.order_id == "D3-0000001")
                     .values(order_status="stolen"))
    bad = run("verify", "--db", db, cwd=tmp_path)
    assert bad.returncode == 1
    assert "order_status ('D3-0000001',): order_status is 'stolen', rebuild says" in bad.stdout
    rebuilt = run("rebuild", "--db", db, cwd=tmp_path)
    assert rebuilt.returncode == 0 and rebuilt.stdout.startswith("rebuilt the read models")
    assert run("verify", "--db", db, cwd=tmp_path).returncode == 0
    views.close()
    ledger.close()


def test_violations_and_report_formats(tmp_path: Path, workload: Path, db: str) -> None:
    run("ingest", str(workload), "--db", db, cwd=tmp_path)
    listed = json.loads(run("violations", "--format", "json", "--db", db,
                            cwd=tmp_path).stdout)
    assert listed and {v["rule"] for v in listed} <= {
        "RETURN_RESPONSE_48H", "RECEIPT_CONFIRM_7D", "COD_REFUND_VOUCHER_48H",
        "REFUND_RESPONSE_48H", "EXCHANGE_RESHIP_48H"}
    one_rule = json.loads(run("violations", "--rule", "RETURN_RESPONSE_48H", "--format",
                              "json", "--db", db, cwd=tmp_path).stdout)
    assert one_rule == [v for v in listed if v["rule"] == "RETURN_RESPONSE_48H"]
    merchant = listed[0]["merchant_id"]
    mine = json.loads(run("violations", "--merchant", merchant, "--format", "json", "--db",
                          db, cwd=tmp_path).stdout)
    assert mine == [v for v in listed if v["merchant_id"] == merchant]
    since = listed[len(listed) // 2]["deadline"]
    later = json.loads(run("violations", "--since", since, "--format", "json", "--db", db,
                           cwd=tmp_path).stdout)
    assert later == [v for v in listed if v["deadline"] >= since]
    table = run("violations", "--db", db, cwd=tmp_path).stdout.splitlines()
    assert table[0].split() == ["deadline", "rule", "merchant_id", "order_id", "case_no",
                                "consequence", "penalty"]
    assert len(table) == len(listed) + 1
    report = list(csv.DictReader(io.StringIO(
        run("report", "--format", "csv", "--db", db, cwd=tmp_path).stdout)))
    assert sum(int(r["violations"]) for r in report) == len(listed)
    worst = [int(r["violations"]) for r in report]
    assert worst == sorted(worst, reverse=True)


def test_project_follow_catches_up_and_follows_new_events(tmp_path: Path, workload: Path,
                                                          db: str) -> None:
    lines = workload.read_text().splitlines(keepends=True)
    half = len(lines) // 2
    run("ingest", "-", "--no-project", "--db", db, cwd=tmp_path, stdin="".join(lines[:half]))
    views, ledger = ReadModels(db), Ledger(db)
    views.create_table()
    env = {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"}
    follower = subprocess.Popen(
        [sys.executable, "-m", "aftersales", "project", "--follow", "--poll", "0.05",
         "--db", db], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env)
    try:
        views.wait("aftersales", ledger.recorder.max_notification_id(), timeout=60)
        run("ingest", "-", "--no-project", "--db", db, cwd=tmp_path,
            stdin="".join(lines[half:]))
        views.wait("aftersales", ledger.recorder.max_notification_id(), timeout=60)
    finally:
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert "stopped at position" in out
    assert run("verify", "--db", db, cwd=tmp_path).returncode == 0
    views.close()
    ledger.close()


DISPUTES = [
    {"command": "place_order", "order_id": "A1", "at": "2026-03-01T10:00:00+08:00",
     "payment": "online", "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900,
     "postage": 800},
    {"command": "pay", "order_id": "A1", "at": "2026-03-01T10:05:00+08:00"},
    {"command": "ship", "order_id": "A1", "at": "2026-03-01T18:00:00+08:00", "carrier": "SF",
     "tracking_no": "SF1"},
    {"command": "deliver", "order_id": "A1", "at": "2026-03-03T10:00:00+08:00"},
    {"command": "request_return", "order_id": "A1", "at": "2026-03-04T10:00:00+08:00",
     "reason": "broken"},
    {"command": "reject_return", "order_id": "A1", "at": "2026-03-04T12:00:00+08:00",
     "reason": "used"},
    {"command": "appeal", "order_id": "A1", "at": "2026-03-05T10:00:00+08:00",
     "reason": "it came broken"},
    {"command": "submit_evidence", "order_id": "A1", "at": "2026-03-05T20:00:00+08:00",
     "evidence": ["IMG-1", "IMG-2"], "note": "photos"},
    {"command": "arbitrate", "order_id": "A1", "at": "2026-03-06T10:00:00+08:00",
     "outcome": "user", "blame": "merchant", "note": "broken in the photos"},
    {"command": "place_order", "order_id": "A2", "at": "2026-03-01T10:00:00+08:00",
     "payment": "cod", "merchant_id": "M2", "user_id": "U2", "goods_amount": 5000,
     "postage": 0},
    {"command": "confirm_order", "order_id": "A2", "at": "2026-03-01T11:00:00+08:00"},
    {"command": "ship", "order_id": "A2", "at": "2026-03-01T18:00:00+08:00", "carrier": "SF",
     "tracking_no": "SF2"},
    {"command": "deliver", "order_id": "A2", "at": "2026-03-03T10:00:00+08:00"},
    {"command": "request_exchange", "order_id": "A2", "at": "2026-03-04T10:00:00+08:00",
     "reason": "size"},
    {"command": "reject_return", "order_id": "A2", "at": "2026-03-04T11:00:00+08:00",
     "reason": "worn"},
    {"command": "appeal", "order_id": "A2", "at": "2026-03-11T11:00:00+08:00",
     "reason": "never worn"},
    {"command": "tick", "at": "2026-03-20T00:00:00+08:00"},
]


def test_disputes_command_history_and_report(tmp_path: Path, db: str) -> None:
    """SPEC section 8 through the command line: the ruling in the audit trail, the open
    and the timed-out dispute, `disputes` with its filters and formats, the evidence
    violation, and the scorecard's loss rate."""
    path = tmp_path / "disputes.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in DISPUTES))
    assert run("ingest", str(path), "--db", db, cwd=tmp_path).returncode == 0
    history = json.loads(run("history", "A1", "--json", "--db", db, cwd=tmp_path).stdout)
    ruled = next(e for e in history if e["event"] == "ArbitrationRuled")
    assert ruled["actor"] == "platform"
    assert {k: ruled["details"][k] for k in ("outcome", "blame", "evidence")} == {
        "outcome": "user", "blame": "merchant", "evidence": ["IMG-1", "IMG-2"]}
    auto = next(e for e in json.loads(run("history", "A2", "--json", "--db", db,
                                          cwd=tmp_path).stdout)
                if e["event"] == "ArbitrationAutoRuled")
    assert (auto["actor"], auto["rule"], auto["deadline"]) == (
        "system", "A-2", "2026-03-13T11:00:00+08:00")
    doc = json.loads(run("status", "A2", "--json", "--as-of", "2026-03-12T00:00:00+08:00",
                         "--db", db, cwd=tmp_path).stdout)
    assert doc["return"]["arbitration"]["status"] == "open"
    assert doc["return"]["awaiting"] == "merchant"
    found = json.loads(run("disputes", "--format", "json", "--db", db, cwd=tmp_path).stdout)
    assert [(d["order_id"], d["kind"], d["ruled_by"], d["outcome"], d["blame"], d["lost"])
            for d in found] == [("A1", "return", "platform", "user", "merchant", True),
                                ("A2", "exchange", "system", "user", "merchant", True)]
    assert found[0]["hours_to_ruling"] == 24.0 and found[0]["evidence_count"] == 2
    mine = json.loads(run("disputes", "--merchant", "M2", "--format", "json", "--db", db,
                          cwd=tmp_path).stdout)
    assert [d["order_id"] for d in mine] == ["A2"]
    later = json.loads(run("disputes", "--since", "2026-03-10T00:00:00+08:00", "--format",
                           "json", "--db", db, cwd=tmp_path).stdout)
    assert [d["order_id"] for d in later] == ["A2"]
    assert json.loads(run("disputes", "--status", "open", "--format", "json", "--db", db,
                          cwd=tmp_path).stdout) == []
    table = run("disputes", "--db", db, cwd=tmp_path).stdout.splitlines()
    assert table[0].split()[:4] == ["order_id", "merchant_id", "case_no", "kind"]
    assert len(table) == 3
    rows = list(csv.DictReader(io.StringIO(run("disputes", "--lost", "--format", "csv",
                                               "--db", db, cwd=tmp_path).stdout)))
    assert [r["order_id"] for r in rows] == ["A1", "A2"]
    missed = json.loads(run("violations", "--rule", "ARBITRATION_EVIDENCE_48H", "--format",
                            "json", "--db", db, cwd=tmp_path).stdout)
    assert [(v["order_id"], v["consequence"]) for v in missed] == [("A2", "ruled_for_user")]
    report = {r["merchant_id"]: r for r in json.loads(run(
        "report", "--format", "json", "--db", db, cwd=tmp_path).stdout)}
    assert report["M1"]["disputes_lost"] == 1 and report["M1"]["orders_placed"] == 1
    assert report["M1"]["dispute_loss_per_1000_orders"] == 1000.0
    assert report["M2"]["evidence_missed"] == 1
