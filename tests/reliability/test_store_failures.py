"""Store failures with real faults: a lock another process holds, a PostgreSQL cluster
stopped in the middle of an ingest, backends the server terminates, a frozen server, a
full disk.  A failure that passes within the retry time is waited for; one that does not
stops the work at once, says why and where, and running the same work again gives
exactly the state of an uninterrupted run (issue 10, items 1 to 3)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL, _conninfo
from tests.faults import Cluster, SmallDisk, SQLiteLock, cluster, terminate_backends
from tests.reliability.snapshot import Snapshot, cli, env, snapshot

__all__ = ["cluster"]  # the fixture

pytestmark = pytest.mark.slow

AT = "2026-03-01T10:00:00+08:00"
PLACE = {"command": "place_order", "order_id": "D1", "at": AT, "payment": "online",
         "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900, "postage": 800}
#: Paid five minutes after it was placed, then a sweep the next day: if the payment were
#: lost, the sweep would cancel the order (C-ON-4) and a re-run could not undo it.
PAY_THEN_TICK = "\n".join(json.dumps(x) for x in (
    {"command": "pay", "order_id": "D1", "at": "2026-03-01T10:05:00+08:00"},
    {"command": "tick", "at": "2026-03-02T10:00:01+08:00"})) + "\n"
FAST = {"AFTERSALES_LOCK_TIMEOUT": "0.2"}


def run(*args: str, cwd: Path, stdin: str | None = None,
        extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), cwd=cwd, input=stdin, capture_output=True, text=True,
                          env={**env(), **(extra or {})}, timeout=600)


class Running:
    """A command running in the background, its output read as it comes; with `fed`, its
    standard input is written by the test (`feed`), so that it waits for more lines
    exactly where the test wants a fault."""

    def __init__(self, args: list[str], cwd: Path, extra: dict[str, str] | None = None,
                 fed: bool = False) -> None:
        self.proc = subprocess.Popen(cli(*args), cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.PIPE if fed else None,
                                     env={**env(), **(extra or {})})
        self.out: queue.Queue[str | None] = queue.Queue()
        self.err: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self.pumps = [threading.Thread(target=self._pump, args=(stream, into, kept),
                                       daemon=True)
                      for stream, into, kept in ((self.proc.stdout, self.out, self.stdout),
                                                 (self.proc.stderr, self.err, self.stderr))]
        for pump in self.pumps:
            pump.start()
        self.feeding = threading.Thread(target=lambda: None)
        self.feeding.start()

    @staticmethod
    def _pump(stream: IO[str] | None, into: queue.Queue[str | None], kept: list[str]) -> None:
        assert stream is not None
        for line in stream:
            kept.append(line)
            into.put(line)
        into.put(None)

    def until(self, where: queue.Queue[str | None], text: str, count: int = 1) -> str:
        """Read lines until `count` of them hold `text` (the last one), or the end."""
        seen = 0
        while True:
            line = where.get(timeout=300)
            if line is None:
                raise AssertionError(f"the command ended before printing {text!r}:\n"
                                     + "".join(self.stderr)[-3000:])
            if text in line:
                seen += 1
                if seen >= count:
                    return line

    def feed(self, lines: list[str], end: bool = False) -> None:
        """Write lines to its input (`end`: and close it) from a thread of its own: a
        command waiting for its store reads no input, and the pipe fills."""
        def write() -> None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ValueError):  # it may have stopped
                self.proc.stdin.write("".join(line + "\n" for line in lines))
                self.proc.stdin.flush()
                if end:
                    self.proc.stdin.close()

        self.feeding.join()
        self.feeding = threading.Thread(target=write, daemon=True)
        self.feeding.start()

    def wait(self) -> int:
        code = self.proc.wait(timeout=600)
        self.feeding.join(timeout=60)
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        for pump in self.pumps:  # the output read to its end, then closed
            pump.join(timeout=60)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code


#: Lines fed before the fault, in whole batches of `BATCH` (each acknowledged).
BATCH, BEFORE = 50, 400


@contextlib.contextmanager
def write_lock(url: str, tmp: Path) -> Iterator[None]:
    """Another process (or session) holds the store's write lock meanwhile."""
    if url.startswith("sqlite:///"):
        with SQLiteLock(Path(url.removeprefix("sqlite:///"))):
            yield
        return
    schema = make_url(url).query["schema"]
    with psycopg.connect(_conninfo(make_url(PG_URL).database or "")) as conn:
        conn.execute(f'LOCK TABLE "{schema}".aftersales_events IN EXCLUSIVE MODE')
        yield
        conn.rollback()


def test_a_lock_held_past_the_retry_time_stops_ingest_and_a_rerun_converges(
        tmp_path: Path, db_url: str) -> None:
    """The issue's minimal case: a payment and a later sweep, the store locked meanwhile."""
    (tmp_path / "pay.jsonl").write_text(PAY_THEN_TICK)
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    for url in (db_url, reference_url):
        assert run("ingest", "-", "--db", url, cwd=tmp_path,
                   stdin=json.dumps(PLACE) + "\n").returncode == 0
    assert run("ingest", "pay.jsonl", "--db", reference_url, cwd=tmp_path).returncode == 0
    with write_lock(db_url, tmp_path):
        stopped = run("ingest", "pay.jsonl", "--batch", "1", "--retry-for", "1", "--db",
                      db_url, cwd=tmp_path, extra={"AFTERSALES_LOCK_TIMEOUT": "0.2"})
    assert stopped.returncode == 3, stopped.stderr
    assert "stopped before line 1: the store failed: recording line 1" in stopped.stderr
    assert "gave up after retrying for" in stopped.stderr
    assert "aftersales: waiting: recording line 1:" in stopped.stderr
    assert "lock" in stopped.stderr  # SQLite: database is locked; PostgreSQL: lock timeout
    assert stopped.stderr.count("line 2") == 0  # the sweep after it was not even decided
    assert "Traceback" not in stopped.stderr
    status = run("status", "D1", "--json", "--db", db_url, cwd=tmp_path)
    assert json.loads(status.stdout)["order_status"] == "awaiting_payment"
    again = run("ingest", "pay.jsonl", "--batch", "1", "--db", db_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(run("status", "D1", "--json", "--db", db_url,
                          cwd=tmp_path).stdout)["order_status"] == "paid"
    assert snapshot(db_url) == snapshot(reference_url)


def test_a_lock_released_within_the_retry_time_is_waited_for(
        tmp_path: Path, db_url: str, workload_file: Path, reference: Snapshot) -> None:
    assert run("db", "init", "--db", db_url, cwd=tmp_path).returncode == 0
    lock = write_lock(db_url, tmp_path)
    lock.__enter__()
    try:
        ingest = Running(["ingest", str(workload_file), "--db", db_url], tmp_path,
                         extra={"AFTERSALES_LOCK_TIMEOUT": "0.2"})
        said = ingest.until(ingest.err, "aftersales: waiting:")
        assert "recording lines 1 to" in said and "for up to" in said
    finally:
        lock.__exit__(None, None, None)
    assert ingest.wait() == 0, "".join(ingest.stderr)
    assert snapshot(db_url) == reference


def outage_mid_ingest(cluster: Cluster, lines: list[str], cwd: Path, retry_for: str,
                      extra: dict[str, str] | None = None,
                      fault: str = "stop") -> Running:
    """An ingest fed `BEFORE` lines (all acknowledged), then the server stopped (or
    frozen), then the rest of the lines."""
    ingest = Running(["ingest", "-", "--ack", "--batch", str(BATCH), "--retry-for",
                      retry_for, "--db", cluster.url], cwd, extra=extra, fed=True)
    ingest.feed(lines[:BEFORE])
    ingest.until(ingest.out, f"ack {BEFORE} ")
    cluster.stop() if fault == "stop" else cluster.freeze()
    ingest.feed(lines[BEFORE:], end=True)
    return ingest


def test_a_postgres_outage_mid_ingest_stops_it_and_a_rerun_converges(
        tmp_path: Path, cluster: Cluster, workload_file: Path, workload_lines: list[str],
        reference: Snapshot) -> None:
    """The server is stopped in the middle of an ingest, longer than the retry time: the
    ingest stops at once, naming the cause and where; started again, the same ingest
    carries on, and the store is exactly an uninterrupted run's."""
    ingest = outage_mid_ingest(cluster, workload_lines, tmp_path, "3")
    assert ingest.wait() == 3
    stderr = "".join(ingest.stderr)
    assert f"stopped before line {BEFORE + 1}: the store failed: recording lines " \
        f"{BEFORE + 1} to {BEFORE + BATCH}" in stderr
    assert "gave up after retrying for" in stderr
    assert "cannot connect" in stderr or "terminating connection" in stderr  # the cause
    assert "Traceback" not in stderr
    assert stderr.count("\n") < 10  # one summary, not a refusal per later line
    acked = [int(line.split()[1]) for line in ingest.stdout if line.startswith("ack ")]
    assert max(acked) == BEFORE  # nothing from the stop on was acknowledged
    cluster.start()
    again = run("ingest", str(workload_file), "--db", cluster.url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert snapshot(cluster.url) == reference


def test_a_short_postgres_outage_is_waited_for(tmp_path: Path, cluster: Cluster,
                                              workload_lines: list[str],
                                              reference: Snapshot) -> None:
    ingest = outage_mid_ingest(cluster, workload_lines, tmp_path, "120")
    said = ingest.until(ingest.err, "aftersales: waiting:")
    assert "cannot connect" in said or "terminating connection" in said
    cluster.start()
    assert ingest.wait() == 0, "".join(ingest.stderr)[-3000:]
    assert snapshot(cluster.url) == reference


def test_backends_terminated_mid_ingest_are_reconnected(
        tmp_path: Path, workload_lines: list[str], reference: Snapshot) -> None:
    from tests.conftest import drop_schema, new_schema_url

    url = new_schema_url()
    name = f"aftersales-{os.getpid()}-terminated"
    try:
        ingest = Running(["ingest", "-", "--ack", "--batch", str(BATCH), "--db", url],
                         tmp_path, extra={"PGAPPNAME": name}, fed=True)
        ingest.feed(workload_lines[:BEFORE])
        ingest.until(ingest.out, f"ack {BEFORE} ")
        assert terminate_backends(name, make_url(PG_URL).database or "") >= 1
        ingest.feed(workload_lines[BEFORE:], end=True)
        assert ingest.wait() == 0, "".join(ingest.stderr)[-3000:]
        assert snapshot(url) == reference
    finally:
        drop_schema(url)


def test_a_frozen_server_is_given_up_on_and_a_rerun_converges(
        tmp_path: Path, cluster: Cluster, workload_file: Path, workload_lines: list[str],
        reference: Snapshot) -> None:
    """The server's processes stop (SIGSTOP): its kernel still accepts and acknowledges,
    so only the client's own bound ends the wait."""
    quick = {"AFTERSALES_STATEMENT_TIMEOUT": "1"}
    ingest = outage_mid_ingest(cluster, workload_lines, tmp_path, "3", quick, "freeze")
    try:
        assert ingest.wait() == 3
        stderr = "".join(ingest.stderr)
        assert f"stopped before line {BEFORE + 1}" in stderr
        assert "did not answer within 2 s" in stderr, stderr
        frozen_open = run("status", "D1", "--db", cluster.url, cwd=tmp_path,
                          extra={**quick, "AFTERSALES_RETRY_FOR": "2"})
        assert frozen_open.returncode == 3 and "cannot connect" in frozen_open.stderr
    finally:
        cluster.thaw()
    again = run("ingest", str(workload_file), "--db", cluster.url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert snapshot(cluster.url) == reference


def test_a_full_disk_stops_ingest_and_a_rerun_with_space_converges(
        tmp_path: Path, workload_file: Path, reference: Snapshot) -> None:
    disk = SmallDisk(tmp_path / "disk", "600k")
    try:
        url = f"sqlite:///{disk.path / 'ledger.db'}"
        full = run("ingest", str(workload_file), "--retry-for", "1", "--db", url,
                   cwd=tmp_path)
        assert full.returncode == 3, full.stderr[-2000:]
        assert "disk is full" in full.stderr and "stopped before line" in full.stderr
        assert "Traceback" not in full.stderr
        disk.remount("size=64m")
        again = run("ingest", str(workload_file), "--db", url, cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-2000:]
        assert snapshot(url) == reference
    finally:
        disk.unmount()


def test_a_store_failure_stops_a_parallel_ingest_in_every_worker(
        tmp_path: Path, workload_file: Path, reference: Snapshot) -> None:
    url = f"sqlite:///{tmp_path / 'parallel.db'}"
    ingest = Running(["ingest", str(workload_file), "--workers", "2", "--ack", "--batch",
                      "1", "--retry-for", "1", "--db", url], tmp_path, extra=FAST)
    ingest.until(ingest.out, "ack ", count=300)
    with SQLiteLock(tmp_path / "parallel.db"):
        assert ingest.wait() == 3
    stderr = "".join(ingest.stderr)
    assert "stopped before line" in stderr and "Traceback" not in stderr
    stopped_at = int(stderr.split("stopped before line ")[1].split(":")[0])
    acked = [int(line.split()[1]) for line in ingest.stdout if line.startswith("ack ")]
    assert max(acked) < stopped_at
    again = run("ingest", str(workload_file), "--workers", "2", "--db", url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert snapshot(url) == reference


def test_a_lock_held_past_the_retry_time_stops_tick_and_a_rerun_converges(
        tmp_path: Path, db_url: str, commands_and_end: tuple[str, str]) -> None:
    commands, end = commands_and_end
    reference_url = f"sqlite:///{tmp_path / 'ref.db'}"
    for url in (reference_url, db_url):
        assert run("ingest", "-", "--db", url, cwd=tmp_path, stdin=commands).returncode == 0
    assert run("tick", "--now", end, "--db", reference_url, cwd=tmp_path).returncode == 0
    with write_lock(db_url, tmp_path):
        stopped = run("tick", "--now", end, "--retry-for", "1", "--db", db_url,
                      cwd=tmp_path, extra=FAST)
    assert stopped.returncode == 3
    # SQLite's lock stops the walk of the log that comes first (it records how far the
    # log holds); PostgreSQL's events lock stops the sweep.
    assert "sweeping the timeouts due before" in stopped.stderr \
        or "walking the log since its last check" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert run("tick", "--now", end, "--db", db_url, cwd=tmp_path).returncode == 0
    assert snapshot(db_url) == snapshot(reference_url)


def test_a_failed_projection_step_leaves_the_ledger_recorded_and_says_so(
        tmp_path: Path, workload_file: Path, reference: Snapshot) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    views = tmp_path / "views.db"
    run("db", "init", "--db", url, "--views", f"sqlite:///{views}", cwd=tmp_path)
    with SQLiteLock(views):
        ingest = run("ingest", str(workload_file), "--retry-for", "1", "--db", url,
                     "--views", f"sqlite:///{views}", cwd=tmp_path, extra=FAST)
    assert ingest.returncode == 3, ingest.stderr[-2000:]
    assert "bringing the read models up to date" in ingest.stderr
    assert "The ledger itself is recorded; run `aftersales project`" in ingest.stderr
    assert " 0 refused" in ingest.stdout
    caught_up = run("project", "--db", url, "--views", f"sqlite:///{views}", cwd=tmp_path)
    assert caught_up.returncode == 0
    assert run("verify", "--db", url, "--views", f"sqlite:///{views}",
               cwd=tmp_path).returncode == 0


def test_project_waits_for_a_held_lock_boundedly_and_follow_goes_on_after_it(
        tmp_path: Path, workload_file: Path, reference: Snapshot) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert run("ingest", str(workload_file), "--no-project", "--db", url,
               cwd=tmp_path).returncode == 0
    with SQLiteLock(tmp_path / "ledger.db"):
        bounded = run("project", "--retry-for", "1", "--db", url, cwd=tmp_path, extra=FAST)
        assert bounded.returncode == 3 and "database is locked" in bounded.stderr
        assert "Traceback" not in bounded.stderr
        follow = Running(["project", "--follow", "--ack", "--db", url], tmp_path,
                         extra=FAST)
        follow.until(follow.err, "aftersales: waiting:")
    follow.until(follow.out, "ack position")
    follow.proc.send_signal(signal.SIGTERM)
    assert follow.wait() == 0
    assert run("verify", "--db", url, cwd=tmp_path).returncode == 0
    assert snapshot(url) == reference


def test_project_follow_reconnects_after_its_connections_are_terminated(
        tmp_path: Path, workload_lines: list[str], reference: Snapshot) -> None:
    from tests.conftest import drop_schema, new_schema_url

    url = new_schema_url()
    name = f"aftersales-{os.getpid()}-follow"
    half = len(workload_lines) // 2
    first, rest = tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    first.write_text("\n".join(workload_lines[:half]) + "\n")
    rest.write_text("\n".join(workload_lines[half:]) + "\n")
    try:
        assert run("ingest", str(first), "--no-project", "--db", url,
                   cwd=tmp_path).returncode == 0
        follow = Running(["project", "--follow", "--ack", "--db", url], tmp_path,
                         extra={"PGAPPNAME": name})
        follow.until(follow.out, "ack position")
        assert terminate_backends(name, make_url(PG_URL).database or "") >= 1
        assert run("ingest", str(rest), "--no-project", "--db", url,
                   cwd=tmp_path).returncode == 0
        top = run("db", "check", "--db", url, cwd=tmp_path).stdout
        events = int(top.split("events recorded: ")[1].split()[0].replace(",", ""))
        follow.until(follow.out, f"ack position {events}")
        follow.proc.send_signal(signal.SIGTERM)
        assert follow.wait() == 0
        assert "reconnecting" in "".join(follow.stderr)
        assert run("verify", "--db", url, cwd=tmp_path).returncode == 0
        assert snapshot(url) == reference
    finally:
        drop_schema(url)


def test_project_follow_waits_through_an_outage_and_stops_on_sigterm_meanwhile(
        tmp_path: Path, cluster: Cluster, workload_file: Path) -> None:
    assert run("ingest", str(workload_file), "--no-project", "--db", cluster.url,
               cwd=tmp_path).returncode == 0
    follow = Running(["project", "--follow", "--ack", "--db", cluster.url], tmp_path)
    follow.until(follow.out, "ack position")
    cluster.stop()
    said = follow.until(follow.err, "aftersales: waiting: following:")
    assert "reconnecting" in said
    follow.proc.send_signal(signal.SIGTERM)  # it stops while it waits, not later
    assert follow.wait() == 0
    assert follow.stdout[-1].startswith("stopped at position ")
    cluster.start()
    bounded = Running(["project", "--follow", "--retry-for", "2", "--db", cluster.url],
                      tmp_path)
    bounded.until(bounded.out, "projecting from position")
    cluster.stop()
    assert bounded.wait() == 3  # --retry-for bounds a service's patience
    assert "following: " in "".join(bounded.stderr)
    assert "Traceback" not in "".join(bounded.stderr)
