"""`aftersales bench` at a small N: a smoke test of its report (no timing assertions), and
the group-commit ingest it measures gives what the plain per-command path gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import drop_schema, new_schema_url
from tests.nats_server import NatsServer, nats_server  # noqa: F401
from tests.reliability.snapshot import run_cli, snapshot

pytestmark = pytest.mark.slow


def test_bench_report_is_complete_and_ingest_equals_the_per_command_path(
    tmp_path: Path,
) -> None:
    postgres = new_schema_url()
    work = tmp_path / "work"
    out = run_cli("bench", "--orders", "300", "--repeat", "1", "--workdir", str(work),
                  "--json", str(tmp_path / "bench.json"), "--db", postgres, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert set(report) >= {"date", "machine", "workload", "targets", "ingest_sqlite",
                           "rebuild_sqlite", "postgres", "sweep", "as_of", "scaling",
                           "feed_sqlite"}
    assert set(report["machine"]) >= {"cores", "python", "sqlite", "postgresql"}
    assert report["ingest_sqlite"]["commands_per_s"] > 0
    assert report["ingest_sqlite"]["workers"] >= 1 and report["rebuild_sqlite"]["workers"] >= 1
    assert report["ingest_sqlite"]["baseline_raw_insert_rows_per_s"] > 0
    assert report["ingest_sqlite"]["storage_floor_commands_per_s"] > 0
    assert report["rebuild_sqlite"]["baseline_read_decode_events_per_s"] > 0
    assert report["postgres"]["ingest_commands_per_s_2_processes"] > 0
    assert report["sweep"]["due"] == 30 and report["sweep"]["open_cases"] == 300
    assert set(report["as_of"]) == {"p50_ms_10_events", "p99_ms_10_events",
                                    "p50_ms_200_events", "p99_ms_200_events"}
    assert set(report["scaling"]) == {"30", "300"}
    assert "ingest SQLite" in out.stdout and "as-of 200 events" in out.stdout
    assert "storage floor" in out.stdout
    feed = report["feed_sqlite"]
    assert feed["orders"] == 300 and feed["messages"] > feed["orders"]
    assert feed["commands"] > 0 and feed["cpu_ratio"] > 0 and feed["baseline_commands_per_s"] > 0
    assert "feed SQLite" in out.stdout

    batched = f"sqlite:///{work / 'ingest.db'}"
    one_by_one = f"sqlite:///{tmp_path / 'plain.db'}"
    workload = work / "workload-300.jsonl"
    assert run_cli("ingest", str(workload), "--batch", "1", "--db", one_by_one,
                   cwd=tmp_path).returncode == 0
    assert run_cli("project", "--db", batched, cwd=tmp_path).returncode == 0
    assert snapshot(batched) == snapshot(one_by_one)
    drop_schema(postgres)


def test_bench_through_nats_reports_every_partition_count(
        nats_server: NatsServer, tmp_path: Path) -> None:  # noqa: F811
    out = run_cli("bench", "--nats", nats_server.url, "--orders", "40", "--repeat", "1",
                  "--json", str(tmp_path / "nats.json"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "nats.json").read_text())
    assert report["direct"]["lines_per_s"] > 0
    assert set(report["partitions"]) == {"1", "2", "4"}
    assert report["partitions"]["1"]["ratio_to_one"] == 1.0
    assert all(f["lines_per_s"] > 0 and f["publish_seconds"] > 0
               for f in report["partitions"].values())
    assert "x direct" in out.stdout
