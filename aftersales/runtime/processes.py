"""Worker processes for parallel ingest and rebuild: `python -m MODULE`, a job sent on its
standard input, and its messages back on a pipe of their own.

Workers are started afresh (not forked: the caller may hold threads and connections) and
die with the process that started them (Linux).  A job and its messages are pickled; a
worker's last message is ("done",) (or what its function returned) or ("error",
traceback).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from aftersales.runtime.garbage import tune_for_batch_work


@dataclass
class Spawned:
    proc: subprocess.Popen[bytes]
    pipe: Connection  # what the worker sends

    def kill(self) -> None:
        """Stop the worker at once (its pipe then ends)."""
        if self.proc.poll() is None:
            self.proc.kill()

    def stop(self) -> None:
        self.kill()
        self.proc.wait()
        self.pipe.close()


def spawn(module: str, job: Any) -> Spawned:
    """Start `python -m module` on `job`."""
    read, write = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE,
                                pass_fds=(write,))
    finally:
        os.close(write)
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps((job, write)))
    proc.stdin.close()
    return Spawned(proc, Connection(read, writable=False))


def serve(run: Callable[[Any, Connection], tuple[object, ...] | None]) -> None:
    """A worker's `__main__`: read the job, `run(job, pipe)`, then say how it ended (what
    `run` returned, else ("done",))."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops us
    tune_for_batch_work()
    job, fd = pickle.load(sys.stdin.buffer)
    out = Connection(fd, readable=False)
    try:
        out.send(run(job, out) or ("done",))
    except BaseException:
        with contextlib.suppress(OSError):
            out.send(("error", traceback.format_exc(limit=8)))
        sys.exit(1)


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
