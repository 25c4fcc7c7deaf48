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
from aftersales.readmodels.database import ReadModels
from aftersales.readmodels.schema import order_status
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
