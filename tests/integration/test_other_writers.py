"""Lines of one order must reach the ledger in one stream: an ingest warns of each order
another process recorded commands for while it decided the order's lines (a conflict on
recording, or an order its cache holds moved on by another writer), never of an order only
a sweep moved on, nor of files split by order.

The two-ingest tests run two `aftersales ingest -` processes on pipes, fed a batch at a
time: each batch is fed only once the other process has acknowledged its own (`--ack`: the
batch is committed), so the interleaving is the same on every run.  The conflict tests put
the other writer's command between a batch's load and its record, through the one clock the
ledger reads there (its future-time guard, read once per batch after the batch's orders are
loaded): a real write by another ledger on the same store, at a moment chosen exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from multiprocessing import Pipe
from pathlib import Path
from typing import IO, Any

import pytest

from aftersales import Ledger
from aftersales.application import commands as cmd
from aftersales.application.clock import FutureGuard, wall_clock
from aftersales.errors import CommandRefused
from aftersales.ingest.parallel import _Merge
from aftersales.ingest.serial import IngestReport, Settled, ingest
from tests.scenario import DAY, HOUR, T0

WARNING = "aftersales: warning: order {} was written by another process while this ingest ran"


# --- two ingest processes, fed a batch at a time ------------------------------------------


class Ingest:
    """`aftersales ingest - --ack` in a process of its own, fed a batch of lines at a time."""

    def __init__(self, url: str, cwd: Path, batch: int) -> None:
        env = {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aftersales", "ingest", "-", "--ack", "--no-project",
             "--batch", str(batch), "--db", url],
            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env)
        self.lines = 0
        # Standard error is read all along (a full pipe would stop the process).
        self.err: list[str] = []
        assert self.proc.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,))
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        self.err.extend(stream)

    def feed(self, lines: list[dict[str, Any]]) -> list[str]:
        """Send a batch of lines; their acknowledgements, once all of them are committed."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("".join(json.dumps(x) + "\n" for x in lines))
        self.proc.stdin.flush()
        acks = []
        for _ in lines:
            acks.append(self.proc.stdout.readline().strip())
        self.lines += len(lines)
        assert acks == [f"ack {n} applied" for n in range(self.lines - len(lines) + 1,
                                                          self.lines + 1)], self.err
        return acks

    def finish(self) -> tuple[int, str, str]:
        """Close the input; the exit code, the rest of standard output, standard error."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.stdout.close()
        code = self.proc.wait(timeout=120)
        self._reader.join(timeout=120)
        self.proc.stderr.close()  # type: ignore[union-attr]
        return code, out, "".join(self.err)

    def stop(self) -> None:
        """If it still runs (a test failed midway): end it, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=120)
        self._reader.join(timeout=120)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def place(order_id: str) -> dict[str, Any]:
    return {"command": "place_order", "order_id": order_id, "at": at(0), "payment": "online",
            "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900, "postage": 800}


def step(command: str, order_id: str, hours: float, **fields: Any) -> dict[str, Any]:
    return {"command": command, "order_id": order_id, "at": at(hours), **fields}


def life(order_id: str) -> list[dict[str, Any]]:
    """An order's lines: placed, paid, shipped, delivered, a return asked for that the
    merchant leaves unanswered (a sweep after 48 h approves it), the tracking sent."""
    return [place(order_id), step("pay", order_id, 1),
            step("ship", order_id, 2, carrier="SF", tracking_no="SF1"),
            step("deliver", order_id, 24), step("request_return", order_id, 48, reason="x"),
            step("submit_tracking", order_id, 100, carrier="YTO", tracking_no="YT1")]


ORDERS = ["D1", "D2", "D3"]
#: The sweep between the fifth and the sixth lines: the returns asked at 48 h, unanswered
#: for 48 h, are approved.
SWEEP = at(99)


@pytest.mark.slow
def test_two_ingests_with_lines_of_the_same_orders_warn_of_them(
    tmp_path: Path, db_url: str
) -> None:
    """Each process holds every other line of the same three orders: each meets lines the
    other recorded since it last held the order, and says so, once per order."""
    lives = {order_id: life(order_id) for order_id in ORDERS}
    first, second = Ingest(db_url, tmp_path, 3), Ingest(db_url, tmp_path, 3)
    try:
        for n in range(6):  # line n of every order, from one process and then the other
            (first if n % 2 == 0 else second).feed([lives[x][n] for x in ORDERS])
        results = [first.finish(), second.finish()]
    finally:
        first.stop()
        second.stop()
    for code, out, err in results:
        assert code == 0, err  # a warning alone does not change the exit code
        for order_id in ORDERS:
            assert err.count(WARNING.format(order_id)) == 1, err
        assert "Traceback" not in err
        assert out.endswith("; 3 orders were written by another process while this ingest "
                            "ran (see the warnings)\n"), out
    # `first` met them at its second batch (the pays `second` had recorded), `second` at
    # its second batch (the shipments): each line was decided on the other's state.


@pytest.mark.slow
def test_ingests_of_files_split_by_order_and_a_sweep_between_them_warn_of_nothing(
    tmp_path: Path, db_url: str
) -> None:
    """Two processes on disjoint orders, their batches interleaved as above, and a sweep by a
    third process that moves both processes' orders on (its timeouts carry no command):
    nothing is said."""
    mine, yours = ["A1", "A2", "A3"], ["B1", "B2", "B3"]
    lives = {order_id: life(order_id) for order_id in mine + yours}
    first, second = Ingest(db_url, tmp_path, 3), Ingest(db_url, tmp_path, 3)
    try:
        for n in range(6):
            if n == 5:  # the returns are approved by the sweep, before the tracking
                env = {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"}
                tick = subprocess.run(
                    [sys.executable, "-m", "aftersales", "tick", "--now", SWEEP,
                     "--no-project", "--db", db_url], cwd=tmp_path, capture_output=True,
                    text=True, env=env, timeout=120)
                assert tick.returncode == 0, tick.stderr
                assert tick.stdout.startswith("swept 6 timeouts"), tick.stdout
            first.feed([lives[x][n] for x in mine])
            second.feed([lives[x][n] for x in yours])
        results = [first.finish(), second.finish()]
    finally:
        first.stop()
        second.stop()
    for code, out, err in results:
        assert code == 0, err
        assert "warning" not in err, err
        assert "another process" not in out, out
    ledger = Ledger(db_url)
    try:
        for order_id in mine + yours:
            order = ledger.get_order(order_id)
            assert order is not None and order.version == 7  # six lines and the approval
    finally:
        ledger.close()


# --- a conflict: the other writer's command between a batch's load and its record ------


class Between:
    """A clock for the ledger's future-time guard that, when armed, first lets another
    writer record something: the guard is read once per batch, after the batch's orders are
    loaded and before anything is decided, so the write lands between the two."""

    def __init__(self) -> None:
        self.armed: list[Callable[[], object]] = []

    def __call__(self) -> datetime:
        while self.armed:
            self.armed.pop(0)()
        return wall_clock()


def ledger_with(url: str, clock: Between) -> Ledger:
    return Ledger(url, guard=FutureGuard(timedelta(days=3650), now=clock))


def line(command: dict[str, Any]) -> bytes:
    return (json.dumps(command) + "\n").encode()


def run_ingest(ledger: Ledger, lines: Iterator[bytes], batch: int
               ) -> tuple[IngestReport, list[str], list[Settled]]:
    told: list[str] = []
    settled: list[Settled] = []
    refused: list[tuple[int, CommandRefused]] = []
    report = ingest(ledger, lines, lambda n, r: refused.append((n, r)), on_done=settled.append,
                    batch=batch, on_other=told.append)
    return report, told, settled


def test_a_conflict_with_another_writers_command_is_told_once(db_url: str) -> None:
    """The other writer pays D1 after this batch loaded it: the batch's record conflicts,
    its lines are decided again one by one on the stored state, and D1 is told (not D2,
    which only shared the batch)."""
    clock, other = Between(), Ledger(db_url)
    ledger = ledger_with(db_url, clock)

    def lines() -> Iterator[bytes]:
        yield line(place("D1"))
        yield line(place("D2"))
        clock.armed.append(lambda: other.pay(order_id="D1", at=T0 + HOUR))
        yield line(step("ship", "D1", 2, carrier="SF", tracking_no="SF1"))
        yield line(step("pay", "D2", 1))
        clock.armed.append(lambda: other.deliver(order_id="D1", at=T0 + DAY))
        yield line(step("request_return", "D1", 30, reason="x"))  # conflicts again: D1
        yield line(step("ship", "D2", 2, carrier="SF", tracking_no="SF2"))  # is told once

    try:
        report, told, settled = run_ingest(ledger, lines(), batch=2)
    finally:
        ledger.close()
        other.close()
    assert told == ["D1"] and report.others == {"D1"}
    # The shipment was decided on the state the other writer left (paid, so applied), and
    # the return on the state after its delivery.
    assert [s.status for s in settled] == ["applied"] * 6
    assert "1 order was written by another process" in report.summary()


def test_a_sweep_by_another_writer_is_not_another_stream(db_url: str) -> None:
    """Another writer's sweep cancels D1 (unpaid for 24 h) after this batch loaded it: the
    batch conflicts and is decided again, but the sweep's events carry no command, and
    sweeps may run at once: nothing is told."""
    clock, other = Between(), Ledger(db_url)
    ledger = ledger_with(db_url, clock)

    def lines() -> Iterator[bytes]:
        yield line(place("D1"))
        yield line(place("D2"))
        clock.armed.append(lambda: other.tick(T0 + 25 * HOUR))
        yield line(step("pay", "D1", 26))
        yield line(step("cancel", "D2", 26, by="user", reason="x"))

    try:
        report, told, settled = run_ingest(ledger, lines(), batch=2)
    finally:
        ledger.close()
        other.close()
    assert told == [] and report.others == set()
    assert [s.status for s in settled] == ["applied", "applied", "DEADLINE", "C-ANY"]
    assert "another process" not in report.summary()


def test_an_order_another_writer_moved_on_in_the_cache_is_told(db_url: str) -> None:
    """Between two batches (no conflict): the cache drops the order for the other writer's
    events, and the next batch, loading it for a line, reads what was recorded since."""
    first, other = Ledger(db_url), Ledger(db_url)
    try:
        first.execute_batch([cmd.parse_command(json.dumps(place("D1")))])  # held at 1
        other.pay(order_id="D1", at=T0 + HOUR)
        ship = step("ship", "D1", 2, carrier="SF", tracking_no="SF1")
        first.execute_batch([cmd.parse_command(json.dumps(ship))])
        assert first.uow.others.take() == ["D1"]
        other.deliver(order_id="D1", at=T0 + DAY)  # once per order
        first.execute_batch([cmd.parse_command(json.dumps(step("request_return", "D1", 30,
                                                                reason="x")))])
        assert first.uow.others.take() == []
    finally:
        first.close()
        other.close()


def test_a_parallel_ingest_tells_each_order_once_whichever_worker_met_it() -> None:
    """The merge of a parallel ingest passes on what its workers tell, once per order."""
    pipes = [Pipe(duplex=False) for _ in range(2)]
    told: list[str] = []
    merge = _Merge([r for r, _ in pipes], lambda s: None, lambda n: None, lambda t: None,
                   threading.Event(), lambda: None, told.append)
    for (_, w), messages in zip(pipes, ([("other", "D1"), ("done",)],
                                        [("other", "D1"), ("other", "D2"), ("done",)]),
                                strict=True):
        for message in messages:
            w.send(message)
    merge.run()
    assert merge.error is None
    assert told == ["D1", "D2"]
    assert merge.report.others == {"D1", "D2"}
    assert "2 orders were written by another process" in merge.report.summary()
