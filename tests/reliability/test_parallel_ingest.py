"""Parallel ingest (`--workers`): the same output, line by line, and the same store as a
one-process ingest, whatever the file holds; killed, it loses nothing acknowledged."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from aftersales import Ledger, parse_command
from aftersales.storage.shard import shard_of
from tests.reliability.snapshot import Snapshot, kill_after, run_cli, snapshot

pytestmark = pytest.mark.slow
AT = "2026-03-01T10:00:00+08:00"


def apart(other: str, prefix: str) -> str:
    """An order id owned by another worker than `other`'s, with two and with three."""
    return next(x for x in (f"{prefix}{n}" for n in range(1000))
                if all(shard_of(x) % k != shard_of(other) % k for k in (2, 3)))


def awkward_lines(workload_lines: list[str]) -> list[str]:
    """The workload with what a real file also holds, spread through it: lines that are no
    command, a line given twice, command ids given explicitly and reused on other orders
    (the later line is DUPLICATE-ID exactly when the earlier one was applied), and an
    invalid tick."""
    rng = random.Random(7)
    lines = list(workload_lines)
    extra = ["not json", '{"command": "pay"}', '{"order_id": 17}', "[1, 2]",
             json.dumps({"command": "tick", "at": AT, "extra": 1}), lines[40], lines[3]]
    x1 = "X-first"
    x2, x3 = apart(x1, "Y"), apart("NOPE", "Z")
    place = {"command": "place_order", "at": AT, "payment": "cod", "merchant_id": "M",
             "user_id": "U", "goods_amount": 100}
    extra += [json.dumps({**place, "order_id": x1, "command_id": "shared-0"}),  # applied
              json.dumps({**place, "order_id": x2, "command_id": "shared-0"}),  # then not
              json.dumps({"command": "pay", "order_id": "NOPE", "at": AT,  # refused,
                          "command_id": "shared-1"}),
              json.dumps({**place, "order_id": x3, "command_id": "shared-1"})]  # so applied
    for line in extra:
        lines.insert(rng.randrange(20, len(lines)), line)
    return lines


@pytest.fixture(scope="module")
def awkward_file(tmp_path_factory: pytest.TempPathFactory,
                 workload_lines: list[str]) -> Path:
    path = tmp_path_factory.mktemp("awkward") / "awkward.jsonl"
    path.write_text("\n".join(awkward_lines(workload_lines)) + "\n")
    return path


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory,
                awkward_file: Path) -> tuple[str, str, Snapshot]:
    where = tmp_path_factory.mktemp("one")
    url = f"sqlite:///{where / 'one.db'}"
    out = run_cli("ingest", str(awkward_file), "--ack", "--workers", "1", "--batch", "97",
                  "--db", url, cwd=where)
    assert out.returncode == 1  # some lines are refused
    return out.stdout, out.stderr, snapshot(url)


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_ingest_reports_and_records_what_one_process_does(
    tmp_path: Path, db_url: str, awkward_file: Path, workers: int,
    one_process: tuple[str, str, Snapshot],
) -> None:
    stdout, stderr, recorded = one_process
    out = run_cli("ingest", str(awkward_file), "--ack", "--workers", str(workers),
                  "--batch", "97", "--db", db_url, cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr == stderr  # every refusal, in line order, word for word
    assert "DUPLICATE-ID" in stderr and "INPUT" in stderr
    assert out.stdout == stdout  # acknowledgements in line order, then the same summary
    assert snapshot(db_url) == recorded


def test_a_parallel_ingest_killed_then_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, db_url: str, workload_file: Path, workload_lines: list[str],
) -> None:
    reference = f"sqlite:///{tmp_path / 'ref.db'}"
    assert run_cli("ingest", str(workload_file), "--workers", "1", "--db", reference,
                   cwd=tmp_path).returncode == 0
    acks = random.Random(11).randrange(200, len(workload_lines) - 200)
    code, seen = kill_after(["ingest", str(workload_file), "--ack", "--workers", "2",
                             "--batch", "50", "--db", db_url], tmp_path, acks)
    assert code == -9 and len(seen) == acks
    ledger = Ledger(db_url)
    recorded = ledger.index.command_ids()
    for ack in seen:
        number, status = ack.split()
        if status == "applied":  # nothing acknowledged is lost
            assert parse_command(workload_lines[int(number) - 1]).identity()[0] in recorded
    ledger.close()
    again = run_cli("ingest", str(workload_file), "--workers", "2", "--db", db_url,
                    cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert snapshot(db_url) == snapshot(reference)


@pytest.mark.parametrize("source,store", [("-", "sqlite"), ("file", "memory:")])
def test_parallel_ingest_needs_a_file_and_a_durable_store(
    tmp_path: Path, workload_file: Path, source: str, store: str,
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}" if store == "sqlite" else store
    out = run_cli("ingest", str(workload_file) if source == "file" else "-",
                  "--workers", "2", "--db", url, cwd=tmp_path, stdin="")
    assert out.returncode == 2
    assert "parallel ingest reads a file" in out.stderr
