"""What a store holds, in a form that does not depend on which store or run wrote it: each
order's events without their recorded time, the applied command ids, and the read-model
rows without log positions (those depend on how writers interleaved)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from aftersales import Ledger
from aftersales.application.status import status_document
from projections.database import ReadModels
from projections.schema import READ_MODELS, metadata
from tests.integration.test_stateful import comparable

#: Columns that depend on how writers interleaved (positions) or when they recorded (the
#: digests cover each event's recorded time).
POSITIONS = {"position", "last_position", "history_digest"}


@dataclass
class Snapshot:
    events: dict[str, list[Any]]
    commands: set[str]
    read_models: dict[str, list[str]]
    #: Each order's status document (`aftersales status --json`).
    statuses: dict[str, Any] = field(default_factory=dict)


def snapshot(url: str) -> Snapshot:
    return partitioned_snapshot([url], url)


def partitioned_snapshot(urls: list[str], views_url: str) -> Snapshot:
    """What a ledger of these partitions holds (one URL: one store), with the read models
    at `views_url`."""
    events: dict[str, list[Any]] = {}
    statuses: dict[str, Any] = {}
    commands: set[str] = set()
    for url in urls:
        ledger = Ledger(url)
        try:
            order_ids = sorted({e.order_id for e in ledger.all_events()  # type: ignore[attr-defined]
                                if type(e).__name__ == "OrderPlaced"})
            for oid in order_ids:
                events[oid] = [comparable(e) for e in ledger.order_events(oid)]
                order = ledger.get_order(oid)
                assert order is not None
                statuses[oid] = status_document(order)
            commands |= ledger.index.command_ids()
        finally:
            ledger.close()
    views = ReadModels(views_url)
    try:
        rows: dict[str, list[str]] = {}
        with views.engine.connect() as conn:
            for name in READ_MODELS:
                table = metadata.tables[name]
                rows[name] = sorted(
                    repr(sorted((k, v) for k, v in r.items() if k not in POSITIONS))
                    for r in conn.execute(select(table)).mappings())
        return Snapshot(events, commands, rows, statuses)
    finally:
        views.close()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "aftersales", *args]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"}


def run_cli(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), cwd=cwd, input=stdin, capture_output=True, text=True,
                          env=env(), timeout=600)


def kill_after(args: list[str], cwd: Path, acks: int) -> tuple[int, list[str]]:
    """Start the command, read its acknowledgements until `acks` of them arrived, then
    SIGKILL it; return its exit code and the acknowledgements it printed."""
    proc = subprocess.Popen(cli(*args), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env())
    seen: list[str] = []
    out: IO[str] | None = proc.stdout
    assert out is not None
    for line in out:
        if line.startswith("ack "):
            seen.append(line.split(maxsplit=1)[1].strip())
            if len(seen) >= acks:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=120)
    out.close()
    return proc.returncode, seen
