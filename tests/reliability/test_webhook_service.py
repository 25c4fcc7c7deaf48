"""`serve-webhook` as a service under hostile and careless clients: idle and slow
connections bounded while good clients are answered, a malformed Content-Length answered,
a client that goes away costing one log line, keep-alive over HTTP/1.1, a body replayed
many times kept once, health and metrics (read back against the ledger), JSON log lines,
secrets from files, and options checked before anything is served."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from aftersales import Ledger
from tests.webhook_server import (
    ENV,
    KEY,
    NOW,
    SECRET,
    WAIT,
    Server,
    metric,
    paid,
    payments,
    placed,
    received,
    server,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def connect(s: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", s.port), timeout=WAIT)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (read until it does, or WAIT passes)."""
    try:
        while sock.recv(4096):
            pass  # an answer (408) before the close
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.close()


def test_idle_and_slow_clients_are_bounded_while_good_ones_are_answered(
        tmp_path: Path, sqlite_url: str) -> None:
    placed(sqlite_url, 3)
    with server(tmp_path, sqlite_url, "--lateness", "0", "--header-timeout", "1",
                "--body-timeout", "1") as s:
        idle = [connect(s) for _ in range(100)]  # connect, never send a byte
        slow = []
        for _ in range(100):  # a head, then a body that never comes whole
            sock = connect(s)
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            slow.append(sock)
        half_head = connect(s)
        half_head.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # a head never finished
        assert threads_of(s.process.pid) < 60  # held by the event loop, not a thread each
        with ThreadPoolExecutor(max_workers=3) as pool:  # good clients meanwhile
            assert [a[0] for a in pool.map(lambda n: s.post(paid(n)), range(3))] == [200] * 3
        assert all(closed_by_server(sock) for sock in [*idle, *slow, half_head])
        s.expect("ack applied 3")
        assert s.post(paid(0))[0] == 200  # still serving
    assert not [line for line in s.seen if "Traceback" in line]
    assert payments(sqlite_url) == 3


def test_a_malformed_request_is_answered_and_a_client_going_away_costs_one_line(
        tmp_path: Path, sqlite_url: str) -> None:
    placed(sqlite_url, 1)
    with server(tmp_path, sqlite_url, "--lateness", "0") as s:
        for length in (b"abc", b"-5", b"1e3"):
            sock = connect(s)
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + length
                         + b"\r\n\r\n[]")
            answer = sock.recv(4096)
            sock.close()
            assert answer.startswith(b"HTTP/1.1 400"), answer
        for _ in range(20):  # clients that go away in the middle of their bodies
            sock = connect(s)
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n[{")
            sock.close()
        big = connect(s)  # announced over 1 MiB: refused before it is read
        big.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")
        assert big.recv(4096).startswith(b"HTTP/1.1 413")
        big.close()
        assert s.post(paid(0))[0] == 200
        s.expect("ack applied 1")
        s.process.send_signal(signal.SIGTERM)
        s.expect("stopped")
        assert s.process.wait(timeout=WAIT) == 0
    assert not [line for line in s.seen if "Traceback" in line or "BrokenPipe" in line]
    gone = [line for line in s.seen if "went away" in line]
    assert 1 <= len(gone) <= 20
    assert all(json.loads(line)["level"] == "info" for line in gone)


def test_keep_alive_over_http_1_1_and_a_replayed_body_is_kept_once(
        tmp_path: Path, db_url: str) -> None:
    placed(db_url, 1)
    signed = {"event-sign": __import__("hashlib").md5(
        KEY.encode() + paid(0) + SECRET.encode()).hexdigest()}
    with server(tmp_path, db_url, "--lateness", "0") as s:
        connection = http.client.HTTPConnection("127.0.0.1", s.port, timeout=WAIT)
        for _ in range(50):  # one connection, the same body fifty times
            connection.request("POST", "/douyin", body=paid(0), headers=signed)
            answer = connection.getresponse()
            assert (answer.status, answer.version) == (200, 11)
            assert json.loads(answer.read()) == {"code": 0, "msg": "success"}
        assert connection.sock is not None  # still the one connection
        connection.close()
        s.expect("ack applied 1")
        _, text = s.get("/metrics")
        assert metric(text, "aftersales_webhook_bodies_received_total", copy="new") == 1
        assert metric(text, "aftersales_webhook_bodies_received_total", copy="again") == 49
    assert received(db_url) == 1 and payments(db_url) == 1


def test_health_readiness_and_metrics_agree_with_the_ledger(tmp_path: Path,
                                                           db_url: str) -> None:
    placed(db_url, 6)
    with server(tmp_path, db_url, "--lateness", "0") as s:
        assert s.get("/healthz") == (200, json.dumps({"status": "alive"},
                                                      separators=(",", ":")))
        for n in range(5):
            assert s.post(paid(n))[0] == 200
        assert s.post(paid(0), sign="0" * 32)[0] == 401
        assert s.post(b"[1]", sign=None)[0] == 401  # unsigned
        s.expect("ack applied 5")
        status, ready = s.get("/readyz")
        doc = json.loads(ready)
        assert status == 200 and doc["ready"] is True and doc["backlog"] == 0
        _, text = s.get("/metrics")
        assert metric(text, "aftersales_http_responses_total", status="200",
                      path="push") == 5
        assert metric(text, "aftersales_http_responses_total", status="401",
                      path="push") == 2
        assert metric(text, "aftersales_webhook_messages_received_total") == 5
        assert metric(text, "aftersales_feed_messages_total", outcome="applied") == 5
        assert metric(text, "aftersales_inbox_backlog") == 0
        assert metric(text, "aftersales_inbox_received") == received(db_url) == 5
        assert metric(text, "aftersales_applier_active") == 1
        assert s.get("/nowhere")[0] == 405  # a GET that is not one of the three
    assert payments(db_url) == 5


def test_readiness_says_503_while_a_body_waits_beyond_the_bound(tmp_path: Path,
                                                              sqlite_url: str) -> None:
    """A body received two days ago is still held by a window of a day: it has waited a
    day beyond the window, past a bound of 0 s; a body received now has not."""
    placed(sqlite_url, 2)
    ledger = Ledger(sqlite_url)
    try:
        ledger.index.inbox_add(paid(0), NOW - timedelta(days=2))
    finally:
        ledger.close()
    with server(tmp_path, sqlite_url, "--lateness", "86400", "--max-lag", "0") as s:
        status, text = s.get("/readyz")
        doc = json.loads(text)
        assert status == 503 and doc["ready"] is False and doc["backlog"] == 1
        assert "beyond the lateness window" in doc["reason"]
        _, metrics = s.get("/metrics")
        assert metric(metrics, "aftersales_inbox_backlog") == 1
        assert metric(metrics, "aftersales_applier_lag_seconds") >= 86400
    with server(tmp_path, sqlite_url, "--lateness", "86400", "--max-lag", "0") as s:
        assert s.post(paid(1))[0] == 200
    ledger = Ledger(sqlite_url)
    try:
        ledger.index.inbox_mark_applied(2, NOW)  # the old one out of the way
    finally:
        ledger.close()
    with server(tmp_path, sqlite_url, "--lateness", "86400", "--max-lag", "0") as s:
        status, text = s.get("/readyz")
        assert status == 200 and json.loads(text)["backlog"] == 1  # within the window


def test_secrets_are_read_from_files_and_never_logged(tmp_path: Path,
                                                      sqlite_url: str) -> None:
    placed(sqlite_url, 1)
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "secret").write_text(SECRET + "\n")
    env = {"AFTERSALES_DOUYIN_APP_KEY_FILE": str(tmp_path / "key"),
           "AFTERSALES_DOUYIN_APP_SECRET_FILE": str(tmp_path / "secret")}
    with server(tmp_path, sqlite_url, "--lateness", "0", env=env) as s:
        assert s.post(paid(0))[0] == 200
        s.expect("ack applied 1")
    assert not [line for line in s.seen if SECRET in line]
    assert payments(sqlite_url) == 1


@pytest.mark.parametrize(("args", "env", "said"), [
    (["--port", "99999"], ENV,
     "error: argument --port: '99999': a port is 1 to 65535 (0: a free one)"),
    (["--port", "0", "--header-timeout", "0"], ENV,
     "error: argument --header-timeout: '0': expected more than 0 to 604,800 seconds"),
    (["--port", "0"], {"AFTERSALES_DOUYIN_APP_KEY": KEY}, "needs the app's key and secret"),
    (["--port", "0"], {"AFTERSALES_DOUYIN_APP_KEY": KEY,
                       "AFTERSALES_DOUYIN_APP_SECRET_FILE": "/nonexistent/secret"},
     "AFTERSALES_DOUYIN_APP_SECRET_FILE /nonexistent/secret: cannot be read"),
])
def test_a_bad_option_or_secret_is_said_in_one_line(tmp_path: Path, args: list[str],
                                                    env: dict[str, str], said: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aftersales", "--db", f"sqlite:///{tmp_path / 'l.db'}",
         "serve-webhook", *args], env={"PATH": "/usr/bin:/bin", **env}, cwd=tmp_path,
        capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2
    assert said in done.stderr and "Traceback" not in done.stderr
    said_in = done.stderr.strip().splitlines()
    if said.startswith("error: argument"):  # an option's range: after the usage lines
        assert said_in[0].startswith("usage: aftersales serve-webhook")
        assert said_in[-1].endswith(said)
    else:
        assert len(said_in) == 1
    assert not (tmp_path / "l.db").exists()  # nothing opened, nothing created
