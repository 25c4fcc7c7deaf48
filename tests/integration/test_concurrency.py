"""Several writers on one SQLite file: conflicts are retried, nothing is lost or doubled."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from aftersales import CommandRefused, Ledger, parse_command
from aftersales.devtools.workload import Workload, generate
from tests.integration.test_stateful import comparable


def workload_lines(orders: int) -> list[str]:
    return [json.dumps(x) for x in generate(Workload(orders=orders, seed=11, days=25))]


def apply_all(url: str, lines: list[str], refused: list[str]) -> None:
    ledger = Ledger(url)
    try:
        for line in lines:
            try:
                ledger.execute(parse_command(line))
            except CommandRefused as e:
                refused.append(f"{e.code}: {line}")
    finally:
        ledger.close()


def test_two_writers_with_the_same_commands_equal_one_sequential_run(
    tmp_path: Path, db_url: str
) -> None:
    lines = workload_lines(60)
    sequential = f"sqlite:///{tmp_path / 'one.db'}"
    apply_all(sequential, lines, [])
    shared = db_url
    refused: list[str] = []
    threads = [threading.Thread(target=apply_all, args=(shared, lines, refused))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused == []
    one, two = Ledger(sequential), Ledger(shared)
    ids = sorted({e.order_id for e in one.all_events() if hasattr(e, "order_id")})
    assert ids
    for order_id in ids:
        assert [comparable(e) for e in one.order_events(order_id)] == [
            comparable(e) for e in two.order_events(order_id)], order_id
    assert len(list(one.all_events())) == len(list(two.all_events()))
    one.close()
    two.close()
