"""`aftersales bench --webhook` at a tiny size on SQLite: its report is complete, every body
was answered 200 and applied, no connection failed (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.snapshot import run_cli

pytestmark = pytest.mark.slow

RUN = {"clients", "bodies", "answered_per_s", "answer_seconds", "p50_ms", "p99_ms",
       "answered_200", "non_200", "connection_errors", "unsent", "last_applied_seq",
       "applied_seconds", "applied_per_s", "inbox_received", "inbox_applied",
       "inbox_backlog", "payments", "server_exit", "runs", "first_applied_seconds",
       "applied_after_answers_per_s", "server_cpu_seconds", "client_cpu_seconds"}


def test_bench_webhook_answers_and_applies_every_body(tmp_path: Path) -> None:
    out = run_cli("bench", "--webhook", "--bodies", "40", "--clients", "4,2",
                  "--workdir", str(tmp_path / "work"), "--json", str(tmp_path / "b.json"),
                  cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "b.json").read_text())
    assert set(report) >= {"date", "machine", "workload", "stores"}
    assert set(report["machine"]) >= {"cores", "python", "sqlite"}
    assert report["workload"]["bodies"] == 40 and report["workload"]["clients"] == [4, 2]
    assert set(report["stores"]) == {"sqlite"}  # PostgreSQL only with --db postgresql://
    sqlite = report["stores"]["sqlite"]
    assert sqlite["ingest"]["commands"] == 40 and sqlite["ingest"]["commands_per_s"] > 0
    assert set(sqlite["clients"]) == {"4", "2"}
    for clients, run in sqlite["clients"].items():
        assert set(run) >= RUN
        assert run["clients"] == int(clients)
        assert run["statuses"] == {"200": 40}
        assert (run["non_200"], run["connection_errors"], run["unsent"]) == (0, 0, 0)
        assert run["last_applied_seq"] == 40 and run["applied_per_s"] > 0
        assert (run["inbox_received"], run["inbox_applied"], run["inbox_backlog"]) == (
            40, 40, 0)
        assert run["payments"] == 40 and run["server_exit"] == 0
        assert run["answered_per_s"] > 0 and 0 < run["p50_ms"] <= run["p99_ms"]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("aftersales bench --webhook")
    assert sum(line.startswith("SQLite ") for line in lines) == 2
    assert any(line.startswith("ingest baseline, SQLite:") for line in lines)
    assert "NOT COMPLETE" not in out.stdout


def test_bench_webhook_refuses_a_bad_client_count(tmp_path: Path) -> None:
    out = run_cli("bench", "--webhook", "--clients", "8,none", cwd=tmp_path)
    assert out.returncode == 2 and "numbers of clients" in out.stderr
