"""A NATS server with JetStream of the test's own (/usr/sbin/nats-server on a free port,
its store in the test's directory), which the test may stop and start again; and what a
stream holds, read through the client."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.faults import free_port

SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
T = TypeVar("T")


class NatsServer:
    def __init__(self, folder: Path) -> None:
        if not Path(SERVER).exists():
            pytest.fail("nats-server is needed for the intake tests (.ci/run installs it)")
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
             str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._accepts, f"nats-server on port {self.port} to accept connections")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def _accepts(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def messages(self, stream: str) -> int:
        """How many messages the stream holds (a work queue's: not yet acknowledged)."""
        async def count() -> int:
            import nats
            nc = await nats.connect(self.url)
            try:
                info = await nc.jetstream().stream_info(stream)
                return int(info.state.messages)
            finally:
                await nc.close()
        return run_async(count)


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run` of the coroutine `make()` gives, in a thread of its own: the test
    process's main thread may hold a running loop already (the browser tests' Playwright
    keeps one for the session), where `asyncio.run` refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def wait_for(condition: Callable[[], bool], what: str, limit: float = 120.0) -> None:
    """Look until `condition` holds (a bounded wait on a condition, not a sleep to wait
    something out): fail, naming it, after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {limit:g} s for {what}")
        time.sleep(0.05)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream")
    try:
        yield server
    finally:
        server.stop()
