"""SIGKILL in the middle of `ingest`, `tick` and `project --follow`: nothing acknowledged is
lost, and running the same work again gives exactly the state of an uninterrupted run."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aftersales import Ledger, parse_command
from tests.reliability.snapshot import Snapshot, kill_after, run_cli, snapshot

pytestmark = pytest.mark.slow
SEED = 20261126


@pytest.mark.parametrize("point", range(3))
def test_ingest_killed_then_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, db_url: str, workload_file: Path, workload_lines: list[str],
    reference: Snapshot, point: int,
) -> None:
    acks = random.Random(SEED + point).randrange(20, len(workload_lines) - 20)
    code, seen = kill_after(["ingest", str(workload_file), "--ack", "--db", db_url],
                            tmp_path, acks)
    assert code == -9 and len(seen) == acks
    # Nothing acknowledged was lost: every line acknowledged as applied is recorded.
    ledger = Ledger(db_url)
    recorded = ledger.index.command_ids()
    for ack in seen:
        number, status = ack.split()
        if status == "applied":
            command = parse_command(workload_lines[int(number) - 1])
            assert command.identity()[0] in recorded, ack
    ledger.close()
    again = run_cli("ingest", str(workload_file), "--db", db_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert snapshot(db_url) == reference


def test_tick_killed_then_rerun_equals_an_uninterrupted_sweep(
    tmp_path: Path, db_url: str, commands_and_end: tuple[str, str]
) -> None:
    commands, end = commands_and_end
    reference_url = f"sqlite:///{tmp_path / 'ref.db'}"
    for url in (reference_url, db_url):
        assert run_cli("ingest", "-", "--db", url, cwd=tmp_path, stdin=commands).returncode == 0
    assert run_cli("tick", "--now", end, "--db", reference_url, cwd=tmp_path).returncode == 0
    code, seen = kill_after(["tick", "--now", end, "--ack", "--db", db_url], tmp_path, 5)
    assert code == -9 and len(seen) == 5
    assert run_cli("tick", "--now", end, "--db", db_url, cwd=tmp_path).returncode == 0
    assert snapshot(db_url) == snapshot(reference_url)


def test_project_follow_killed_resumes_from_its_position(
    tmp_path: Path, db_url: str, workload_file: Path, reference: Snapshot
) -> None:
    assert run_cli("ingest", str(workload_file), "--no-project", "--db", db_url,
                   cwd=tmp_path).returncode == 0
    code, seen = kill_after(["project", "--follow", "--ack", "--batch", "50", "--db", db_url],
                            tmp_path, 3)
    assert code == -9 and seen[-1].startswith("position ")
    views_position = int(seen[-1].split()[1])
    assert views_position > 0
    resumed = run_cli("project", "--db", db_url, cwd=tmp_path)
    assert resumed.returncode == 0
    assert run_cli("verify", "--db", db_url, cwd=tmp_path).returncode == 0
    assert snapshot(db_url) == reference
