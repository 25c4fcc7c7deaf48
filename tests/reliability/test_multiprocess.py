"""Several processes ingesting at once, on disjoint and on the same orders, and sweeps
running at once: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from tests.reliability.snapshot import cli, env, run_cli, snapshot

pytestmark = pytest.mark.slow
WRITERS = 3


def split_with_overlap(lines: list[str]) -> list[str]:
    """WRITERS files: each order's commands go to one writer, every third order's to two."""
    by_order: dict[str, list[str]] = defaultdict(list)
    order_of: list[str] = []
    for line in lines:
        order_id = json.loads(line)["order_id"]
        if order_id not in by_order:
            order_of.append(order_id)
        by_order[order_id].append(line)
    files: list[list[str]] = [[] for _ in range(WRITERS)]
    owners = {oid: {n % WRITERS, (n + 1) % WRITERS} if n % 3 == 0 else {n % WRITERS}
              for n, oid in enumerate(order_of)}
    for line in lines:
        for w in owners[json.loads(line)["order_id"]]:
            files[w].append(line)
    return ["\n".join(f) + "\n" for f in files]


def test_writers_on_overlapping_orders_equal_a_sequential_run(
    tmp_path: Path, db_url: str, workload_lines: list[str]
) -> None:
    commands = [x for x in workload_lines if '"tick"' not in x]
    end = json.loads(workload_lines[-1])["at"]
    sequential = f"sqlite:///{tmp_path / 'seq.db'}"
    run_cli("ingest", "-", "--db", sequential, cwd=tmp_path, stdin="\n".join(commands) + "\n")
    run_cli("tick", "--now", end, "--db", sequential, cwd=tmp_path)

    parts = split_with_overlap(commands)
    for n, text in enumerate(parts):
        (tmp_path / f"part{n}.jsonl").write_text(text)
    writers = [subprocess.Popen(cli("ingest", f"part{n}.jsonl", "--db", db_url), cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env()) for n in range(WRITERS)]
    results = [w.communicate(timeout=600) for w in writers]
    for w, (_, err) in zip(writers, results, strict=True):
        assert w.returncode == 0, err[-2000:]
    applied = sum(int(out.split(" applied")[0].split()[-1].replace(",", ""))
                  for out, _ in results)
    assert applied == len(commands)  # each command applied by exactly one writer
    run_cli("tick", "--now", end, "--db", db_url, cwd=tmp_path)
    assert snapshot(db_url) == snapshot(sequential)


def test_sweeps_running_at_once_apply_each_timeout_once(
    tmp_path: Path, db_url: str, commands_and_end: tuple[str, str]
) -> None:
    commands, end = commands_and_end
    single = f"sqlite:///{tmp_path / 'single.db'}"
    for url in (single, db_url):
        run_cli("ingest", "-", "--no-project", "--db", url, cwd=tmp_path, stdin=commands)
    alone = run_cli("tick", "--now", end, "--db", single, cwd=tmp_path)
    sweepers = [subprocess.Popen(cli("tick", "--now", end, "--db", db_url), cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env()) for _ in range(3)]
    outs = [s.communicate(timeout=600) for s in sweepers]
    assert all(s.returncode == 0 for s in sweepers), [e for _, e in outs]
    swept = sum(int(out.split()[1].replace(",", "")) for out, _ in outs)
    # together they did one sweep's work
    assert swept == int(alone.stdout.split()[1].replace(",", "")) > 0
    assert snapshot(db_url) == snapshot(single)
