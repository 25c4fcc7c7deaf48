"""`project --follow --metrics-port`: the follower, a subprocess on a SQLite file, serves
its position, lag and counters in Prometheus' text format while it follows, logs JSON
lines on standard error, and stops on SIGTERM with exit 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

#: How long anything here may take before the test fails (never a pause to wait out).
PATIENCE = 60.0


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aftersales", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=PATIENCE)


def _orders(first: int, count: int) -> str:
    """`count` online orders placed (and paid): two events each."""
    lines = []
    for n in range(first, first + count):
        at = f"2025-03-01T10:{n % 60:02d}:00+08:00"
        lines.append({"command": "place_order", "order_id": f"F{n}", "at": at,
                      "payment": "online", "merchant_id": "M1", "user_id": f"U{n}",
                      "goods_amount": 1000 + n, "postage": 0})
        lines.append({"command": "pay", "order_id": f"F{n}", "at": at})
    return "".join(json.dumps(line) + "\n" for line in lines)


def _ingest(cwd: Path, db: str, text: str, *options: str) -> None:
    path = cwd / f"orders-{len(list(cwd.glob('orders-*')))}.jsonl"
    path.write_text(text)
    done = _cli("ingest", str(path), "--db", db, *options, cwd=cwd)
    assert done.returncode == 0, done.stderr


def _events(cwd: Path, db: str) -> int:
    found = _cli("db", "check", "--json", "--db", db, cwd=cwd)
    assert found.returncode == 0, found.stderr
    return int(json.loads(found.stdout)["events"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(url: str) -> dict[str, float]:
    """The samples of one scrape, by name (labels dropped: one series each here)."""
    text = httpx.get(url, timeout=5).text
    return {sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples}


def _until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Ask again (every 20 ms) until `condition()` holds; fail after PATIENCE seconds, or
    at once if the follower has ended."""
    deadline = time.monotonic() + PATIENCE
    while True:
        assert proc.poll() is None, f"the follower ended ({proc.returncode}) before {what}"
        try:
            if condition():
                return
        except httpx.TransportError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"no {what} within {PATIENCE:.0f} s"
        time.sleep(0.02)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def follower(tmp_path: Path, db: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    _ingest(tmp_path, db, _orders(0, 20))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aftersales", "project", "--follow", "--poll", "0.05",
         "--metrics-port", str(port), "--db", db],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc, f"http://127.0.0.1:{port}/metrics"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=PATIENCE)


def test_the_follower_serves_its_position_lag_and_counters(
        tmp_path: Path, db: str, follower: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = follower
    events = _events(tmp_path, db)
    assert events == 40
    seen: dict[str, float] = {}

    def answers() -> bool:
        seen.update(_metrics(url))
        return seen.get("aftersales_projection_position") == events

    _until(answers, proc, "metrics")
    assert seen["aftersales_projection_lag_events"] == 0
    assert seen["aftersales_projection_lag_seconds"] == 0
    assert seen["aftersales_projection_events_total"] == 0  # projected by the ingest
    assert seen["aftersales_store_retries_total"] == 0

    _ingest(tmp_path, db, _orders(20, 15), "--no-project")
    more = _events(tmp_path, db)
    assert more == events + 30

    def caught_up() -> bool:
        seen.update(_metrics(url))
        return seen["aftersales_projection_position"] == more

    _until(caught_up, proc, f"position {more}")
    assert seen["aftersales_projection_events_total"] == more - events
    assert seen["aftersales_projection_lag_events"] == 0
    assert seen["aftersales_projection_lag_seconds"] == 0

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 0, err
    assert out.splitlines()[0] == f"following {db}"
    assert out.splitlines()[-1] == f"stopped at position {more}"
    logged = [json.loads(line) for line in err.splitlines()]  # JSON lines, nothing else
    started = [x for x in logged if x["event"] == "following"]
    assert started and started[0]["position"] == events and started[0]["metrics"] == url
    assert logged[-1]["event"] == "stopped" and logged[-1]["position"] == more
    with pytest.raises(httpx.TransportError):  # the metrics stop with it
        httpx.get(url, timeout=5)


def test_a_port_that_cannot_be_bound_is_said_before_following(tmp_path: Path, db: str
                                                              ) -> None:
    _ingest(tmp_path, db, _orders(0, 2))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        found = _cli("project", "--follow", "--metrics-port", str(port), "--db", db,
                     cwd=tmp_path)
    assert found.returncode == 2
    assert found.stdout == ""
    assert found.stderr.startswith(f"aftersales: cannot serve metrics on 127.0.0.1:{port}: ")
    assert len(found.stderr.splitlines()) == 1
    found = _cli("project", "--metrics-port", str(port), "--db", db, cwd=tmp_path)
    assert found.returncode == 2 and "--follow" in found.stderr
