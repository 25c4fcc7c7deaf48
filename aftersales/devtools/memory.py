"""The peak resident memory of a process and of every process it starts (Linux).

A sampler thread walks the process tree every `interval` seconds and keeps each process's
own high-water mark (`VmHWM`, which only grows); the figure is their sum, so a parallel
ingest counts its workers too.  (`ru_maxrss` of the children would give only the largest
one, and it would count the measuring process's memory at fork time.)  A sum of peaks is
at least the peak of the sum: it errs on the high side.
"""

from __future__ import annotations

import contextlib
import os
import threading
from types import TracebackType


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
    return found


def _high_water_kb(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class TreePeak:
    """`with TreePeak(pid) as peak: ...`, then `peak.megabytes`."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            tree = [self.pid]
            for pid in tree:
                tree += _children(pid)
            for pid in tree:
                self.peaks[pid] = max(self.peaks.get(pid, 0), _high_water_kb(pid))
            if self._stop.wait(self.interval):
                return

    @property
    def megabytes(self) -> float:
        return sum(self.peaks.values()) / 1024

    @property
    def processes(self) -> int:
        return sum(1 for kb in self.peaks.values() if kb)
