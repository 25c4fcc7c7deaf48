from __future__ import annotations

import json
from pathlib import Path

import pytest

from aftersales.devtools.workload import Workload, generate
from tests.reliability.snapshot import Snapshot, run_cli, snapshot


@pytest.fixture(scope="session")
def workload_lines() -> list[str]:
    """A generated command file (ticks included) shared by the reliability tests."""
    return [json.dumps(x) for x in generate(Workload(orders=250, seed=21, days=25))]


@pytest.fixture(scope="session")
def workload_file(tmp_path_factory: pytest.TempPathFactory,
                  workload_lines: list[str]) -> Path:
    path = tmp_path_factory.mktemp("workload") / "w.jsonl"
    path.write_text("\n".join(workload_lines) + "\n")
    return path


@pytest.fixture(scope="session")
def commands_and_end(workload_lines: list[str]) -> tuple[str, str]:
    """The workload without its ticks (a command file), and the time of its last tick."""
    commands = "\n".join(x for x in workload_lines if '"tick"' not in x) + "\n"
    return commands, json.loads(workload_lines[-1])["at"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, workload_file: Path) -> Snapshot:
    """The uninterrupted run of the shared workload (SQLite), to compare with."""
    where = tmp_path_factory.mktemp("reference")
    url = f"sqlite:///{where / 'ref.db'}"
    assert run_cli("ingest", str(workload_file), "--db", url, cwd=where).returncode == 0
    return snapshot(url)
