"""Parallel ingest: one command file, split by order among worker processes.

Each worker reads the whole file and decides the lines of the orders it owns (and every
tick, sweeping only its own orders; `aftersales.ingest.routing`), with group commit, in file
order.  An order's events are therefore exactly those of a one-process ingest; only the
interleaving of different orders in the event log differs.  The calling process is worker
0; the others run `python -m aftersales.ingest.parallel`.  A thread of the caller merges what the
workers settle, line by line in file order, and reports it as a one-process ingest does:
refusals, `--ack` lines (each once the line is durable), the orders another process wrote
meanwhile (never a worker of this ingest: they share no order), the summary.

A partitioned ledger's file (`aftersales.storage.partition_map`) is ingested the same way,
one worker per partition, each writing its own partition's store: the orders a worker owns
are exactly its partition's (the same shard rule), and each partition sweeps its own.

Two rules keep the outcome that of a one-process ingest where orders meet:

- a command id given explicitly may be reused on another order's line; the later line is
  decided only after the worker that owns the earlier one has settled it (so that it is
  refused as DUPLICATE-ID exactly when the earlier line was applied);
- a worker decides line n only once every other worker has settled its lines up to
  n - `window`: workers stay close, which bounds what each remembers of command ids and
  what the merge holds.

Workers publish how far they have settled in a small shared file (`SettledLines`).  A worker
waits only after settling everything it holds, so no two workers ever wait for each
other.  Workers die with the caller (Linux), and a failed worker ends the ingest.

If the store fails one worker's unit of work past its retry time, that worker stops and
the others are stopped too: the merge then acknowledges only the lines every worker had
settled (the lines before the first one some worker had not), and reports that line as
where the ingest stopped, with the store's error, as a one-process ingest does.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import BinaryIO, cast

from aftersales.application.clock import guard_for
from aftersales.application.ledger import Ledger
from aftersales.errors import CommandRefused, StoreUnavailable, WorkerFailed
from aftersales.ingest.routing import EVERY, route
from aftersales.ingest.serial import BATCH, Halted, IngestReport, Settled, Stop, ingest
from aftersales.runtime.processes import Spawned, serve, spawn
from aftersales.settings import DEFAULT_SETTINGS, PARALLEL_INGEST_FROM, Settings
from aftersales.storage.config import redacted
from aftersales.storage.retry import Patience
from aftersales.storage.shard import Partition

#: How far ahead of the others a worker may decide: this many file lines per worker and
#: line of its batch.
LEAD = 3
#: The progress of a worker that has settled the whole file.
END = 2**62
#: Files this large are ingested by several processes by default (settings.py says why).
PARALLEL_FROM = PARALLEL_INGEST_FROM


def default_workers(size: int | None) -> int:
    """How many processes ingest a file of `size` bytes (None: standard input)."""
    if size is None or size < PARALLEL_FROM:
        return 1
    return min(os.cpu_count() or 1, 4)


class SettledLines:
    """Each worker's settled line, in a file every worker maps into memory."""

    def __init__(self, path: str, workers: int) -> None:
        self.workers = workers
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), 8 * workers)

    @staticmethod
    def create(workers: int) -> str:
        fd, path = tempfile.mkstemp(prefix="aftersales-progress-")
        os.write(fd, bytes(8 * workers))
        os.close(fd)
        return path

    def __getitem__(self, worker: int) -> int:
        value: int = struct.unpack_from("q", self._map, 8 * worker)[0]
        return value

    def __setitem__(self, worker: int, line: int) -> None:
        struct.pack_into("q", self._map, 8 * worker, line)

    def close(self) -> None:
        self._map.close()


class WorkerShare:
    """A worker's part of the file, and its waits for the other workers."""

    def __init__(self, partition: Partition, progress: SettledLines, window: int,
                 stop: threading.Event | None = None) -> None:
        self.partition, self.progress, self.window = partition, progress, window
        self.stop = stop
        self.others = [k for k in range(partition.count) if k != partition.index]
        self.seen = [0] * partition.count  # progress last read
        self.ids: OrderedDict[str, tuple[int, int]] = OrderedDict()  # id: (line, owner)
        self.needs: list[tuple[int, int]] = []  # (worker, line) the current line waits for
        self.on_settled: Callable[[int], None] = lambda number: None

    def take(self, number: int, text: str | None) -> bool:
        if self.stop is not None and self.stop.is_set():
            raise Halted("another worker of this ingest stopped")
        found = route(text, self.partition.count) if text is not None else None
        owner = 0 if found is None else found.owner
        mine = owner in (EVERY, self.partition.index)
        floor = number - self.window
        self.needs = [(k, floor) for k in self.others if mine and not self._reached(k, floor)]
        command_id = None if found is None else found.command_id
        if command_id is not None:
            earlier = self.ids.pop(command_id, None)
            if mine and earlier is not None and earlier[1] != owner:
                line, worker = earlier
                if not self._reached(worker, line):
                    self.needs.append((worker, line))
            self.ids[command_id] = (number, owner)
        while self.ids and next(iter(self.ids.values()))[0] < floor:
            self.ids.popitem(last=False)  # settled by every worker: see the window rule
        return mine

    def _reached(self, worker: int, line: int) -> bool:
        if self.seen[worker] < line:
            self.seen[worker] = self.progress[worker]
        return self.seen[worker] >= line

    def must_wait(self, number: int) -> bool:
        return bool(self.needs)

    def wait(self, number: int) -> None:
        for worker, line in self.needs:
            while not self._reached(worker, line):
                if self.stop is not None and self.stop.is_set():
                    raise Halted("another worker of this ingest stopped")
                time.sleep(0.002)
        self.needs = []

    def settled_upto(self, number: int) -> None:
        self.progress[self.partition.index] = number
        self.on_settled(number)


@dataclass
class _Reader:
    """The file's lines, counting the bytes read (for the progress line)."""

    stream: BinaryIO
    offset: int = 0

    def __iter__(self) -> Iterator[bytes]:
        for raw in self.stream:
            self.offset += len(raw)
            yield raw


@dataclass(frozen=True)
class _Job:
    url: str  # the store; a partitioned ledger's: the worker's partition's (`urls`)
    path: str
    workers: int
    index: int  # this worker's
    batch: int
    window: int
    progress: str  # the SettledLines file (each worker's settled line)
    settings: Settings = DEFAULT_SETTINGS
    #: A partitioned ledger's stores, one per worker (empty: every worker's is `url`).
    urls: tuple[str, ...] = ()


def _run_worker(job: _Job, out: Connection, stop: threading.Event | None = None
                ) -> tuple[object, ...]:
    """Ingest worker `index`'s share of the file, sending what it settles to `out`; how
    it ended, as its last message: ("done",) once it settled its whole share, ("stopped",
    line, reason) if the store failed, ("halted", line) if another worker's stop stopped
    it (each line: the first it had not settled)."""
    index = job.index
    partition = Partition(index, job.workers)
    if job.urls:
        job = replace(job, url=job.urls[index])
    progress = SettledLines(job.progress, job.workers)
    share = WorkerShare(partition, progress, job.window, stop)
    settled: list[tuple[object, ...]] = []
    reached = [0]
    try:
        with open(job.path, "rb") as stream:
            reader = _Reader(stream)

            def send(number: int) -> None:
                out.send(("settled", settled[:], reader.offset, number))
                settled.clear()
                reached[0] = number

            share.on_settled = send
            patience = Patience(job.settings.retry_for, redacted(job.url),
                                on_wait=lambda text: out.send(("waiting", text)))
            try:
                ledger = patience.run(lambda: Ledger(
                    job.url, partition=partition, create_tables=False,
                    settings=job.settings, guard=guard_for(job.settings)),
                    "opening the ledger")
            except StoreUnavailable as e:
                return ("stopped", 1, str(e))
            patience.explain = ledger.store_reason
            try:
                report = ingest(ledger, reader, lambda number, refusal: None,
                                on_done=lambda s: settled.append(
                                    (s.line, s.status, s.reason, s.events, s.timeouts)),
                                batch=job.batch, share=share, patience=patience,
                                on_other=lambda order_id: out.send(("other", order_id)))
            finally:
                ledger.close()
        if report.broken:
            out.send(("broken", sorted(report.broken)))
        if report.stopped is not None:
            return ("stopped", report.stopped.line, report.stopped.reason)
        if stop is not None and stop.is_set():
            return ("halted", reached[0] + 1)
        progress[index] = END
        return ("done",)
    finally:
        progress.close()


@dataclass
class _Merge:
    """The caller's thread that merges the workers' lines into file order."""

    pipes: list[Connection]
    on_settled: Callable[[Settled], None]
    on_progress: Callable[[int], None]
    on_wait: Callable[[str], None]
    stop: threading.Event
    halt_spawned: Callable[[], None]
    on_other: Callable[[str], None] = lambda order_id: None
    report: IngestReport = field(default_factory=IngestReport)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            self._merge()
        except BaseException as e:  # raised again in the caller's thread
            self.error = e
            self.stop.set()

    def _merge(self) -> None:
        n = len(self.pipes)
        queues: list[deque[Settled]] = [deque() for _ in range(n)]
        finished = [False] * n
        offsets = [0] * n
        upto = [0] * n  # each worker has settled every line of its up to here
        bound = END  # once stopping: lines from here on are not acknowledged
        cause: str | None = None
        while True:
            while all(q or f for q, f in zip(queues, finished, strict=True)) and any(queues):
                number = min(q[0].line for q in queues if q)
                parts = [q.popleft() for q in queues if q and q[0].line == number]
                if number < bound:
                    settled = _combine(parts)
                    self.report.add(settled)
                    self.on_settled(settled)
            if all(finished):
                if cause is not None:
                    self.report.stopped = Stop(bound, cause)
                return
            live = [p for p, f in zip(self.pipes, finished, strict=True) if not f]
            for pipe in cast(list[Connection], wait(live)):
                k = self.pipes.index(pipe)
                try:
                    message = pipe.recv()
                except EOFError:
                    if cause is None:
                        raise WorkerFailed(f"ingest worker {k} stopped") from None
                    message = ("halted", upto[k] + 1)  # stopped by the caller: as far as
                if message[0] == "settled":  # it told
                    queues[k].extend(Settled(*x) for x in message[1])
                    offsets[k], upto[k] = message[2], message[3]
                    self.on_progress(min(offsets))
                elif message[0] == "waiting":  # a worker tries a store failure again
                    self.report.retried = True
                    self.on_wait(message[1])
                elif message[0] == "broken":
                    self.report.broken.update(message[1])
                elif message[0] == "other":  # another process wrote one of its orders
                    if self.report.other_writer(message[1]):
                        self.on_other(message[1])
                elif message[0] == "done":
                    finished[k] = True
                elif message[0] in ("stopped", "halted"):
                    finished[k] = True
                    bound = min(bound, message[1])
                    if message[0] == "stopped":
                        cause = cause or message[2]
                        self.stop.set()  # the others stop too: this process's worker
                        self.halt_spawned()  # at its next line, the spawned ones now
                else:
                    raise WorkerFailed(f"ingest worker {k} failed:\n{message[1]}")
            if cause is not None:  # no line of a worker that is still running counts
                bound = min([bound] + [upto[k] + 1 for k in range(n) if not finished[k]])


def ingest_in_parallel(
    url: str | tuple[str, ...],
    path: str,
    workers: int,
    on_refused: Callable[[int, CommandRefused], None],
    on_done: Callable[[Settled], None] = lambda settled: None,
    on_progress: Callable[[int], None] = lambda offset: None,
    batch: int = BATCH,
    settings: Settings = DEFAULT_SETTINGS,
    on_wait: Callable[[str], None] = lambda text: None,
    on_other: Callable[[str], None] = lambda order_id: None,
) -> IngestReport:
    """Ingest the file at `path` with `workers` processes (this one included); report as
    `ingest` does.  `on_progress` hears the bytes of the file every worker has settled,
    `on_wait` what a worker waits for when the store fails, `on_other` (once each) the
    orders another process wrote while a worker decided their lines.  `url` may be a
    partitioned ledger's stores, one per worker (partition k's orders are worker k's)."""
    urls = url if isinstance(url, tuple) else ()
    if urls and len(urls) != workers:
        raise ValueError(f"{len(urls)} partitions for {workers} workers")
    job = _Job(urls[0] if urls else str(url), path, workers, 0, batch,
               LEAD * max(batch, 1) * workers, SettledLines.create(workers), settings, urls)
    read, write = os.pipe()
    pipes = [Connection(read, writable=False)]  # worker 0's, then the spawned ones'
    out = Connection(write, readable=False)
    spawned: list[Spawned] = []
    stop = threading.Event()

    def settled(s: Settled) -> None:
        if (refusal := s.refusal) is not None:
            on_refused(s.line, refusal)
        on_done(s)

    def halt_spawned() -> None:
        for worker in spawned:
            worker.kill()

    merge = _Merge(pipes, settled, on_progress, on_wait, stop, halt_spawned, on_other)
    thread = threading.Thread(target=merge.run, name="aftersales-merge", daemon=True)
    try:
        for k in range(1, workers):
            spawned.append(spawn("aftersales.ingest.parallel", replace(job, index=k)))
            pipes.append(spawned[-1].pipe)
        thread.start()
        try:
            out.send(_run_worker(job, out, stop))
        except BaseException as e:
            if merge.error is None:
                raise
            raise merge.error from e
        thread.join()
        if merge.error is not None:
            raise merge.error
        return merge.report
    finally:
        stop.set()
        for worker in spawned:
            worker.stop()
        pipes[0].close()
        out.close()
        os.unlink(job.progress)


def _combine(parts: list[Settled]) -> Settled:
    """One line's outcome from the workers that decided it (several only for a tick)."""
    if len(parts) == 1:
        return parts[0]
    refused = [p for p in parts if p.reason is not None]
    if refused:  # a tick every worker refused alike
        return refused[0]
    return Settled(parts[0].line, "tick", None, sum(p.events for p in parts),
                   sum(p.timeouts for p in parts))


if __name__ == "__main__":
    serve(_run_worker)
