"""Options are checked before any work: a port out of range, a path whose directory does
not exist, a count of 0, a negative wait, an empty window are each refused at once with
exit code 2, one line naming the option, no traceback, and nothing created."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from tests.e2e.test_cli import run

STORE = "sqlite:///l.db"
SINCE, UNTIL = "2026-03-05T00:00:00+08:00", "2026-03-01T00:00:00+08:00"

MISTAKES = [
    (["serve-webhook", "--port", "99999"],
     "argument --port: '99999': a port is 1 to 65535 (0: a free one)"),
    (["serve-webhook", "--port", "8080", "--spool", "/nonexistent/dir/x"],
     "argument --spool: '/nonexistent/dir/x': there is no directory '/nonexistent/dir'"),
    (["serve-webhook", "--port", "8080", "--spool", "/tmp"],
     "argument --spool: '/tmp' is a directory: give the spool file"),
    (["project", "--follow", "--metrics-port", "0"],
     "argument --metrics-port: '0': a port is 1 to 65535"),
    (["serve-webhook", "--port", "-1"],
     "argument --port: '-1': a port is 1 to 65535 (0: a free one)"),
    (["demo", "--page", "/nonexistent/x.html"],
     "argument --page: '/nonexistent/x.html': there is no directory '/nonexistent'"),
    (["demo", "--page", "."], "argument --page: '.' is a directory: give a file's path"),
    (["bench", "--orders", "0"], "argument --orders: '0': expected 1 to 100,000,000"),
    (["bench", "--json", "/nonexistent/r.json"],
     "argument --json: '/nonexistent/r.json': there is no directory '/nonexistent'"),
    (["gen", "--orders", "0"], "argument --orders: '0': expected 1 to 10,000,000"),
    (["demo", "--orders", "0"], "argument --orders: '0': expected 1 to 10,000,000"),
    (["gen", "--orders", "-5"], "argument --orders: '-5': expected 1 to 10,000,000"),
    (["gen", "--orders", "many"], "argument --orders: 'many': expected a whole number"),
    (["gen", "--days", "0"], "argument --days: '0': expected 1 to 3,660"),
    (["project", "--poll", "-1"],
     "argument --poll: '-1': expected more than 0 to 3,600 seconds"),
    (["project", "--batch", "0"], "argument --batch: '0': expected 1 to 1,000,000"),
    (["ingest", "--batch", "0", "x.jsonl"], "argument --batch: '0': expected 1 to 1,000,000"),
    (["ingest", "--workers", "0", "x.jsonl"], "argument --workers: '0': expected 1 to 64"),
    (["--retry-for", "-1", "status", "D1"],
     "argument --retry-for: '-1': expected 0 to 86,400 seconds"),
    (["status", "D1", "--retry-for", "nan"],
     "argument --retry-for: 'nan': expected 0 to 86,400 seconds"),
    (["serve-webhook", "--port", "8080", "--body-timeout", "0"],
     "argument --body-timeout: '0': expected more than 0 to 604,800 seconds"),
    (["db", "check", "--max-lag", "-5"],
     "argument --max-lag: '-5': expected 0 to 1,000,000,000 seconds"),
]


@pytest.mark.parametrize("args,message", MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_bad_option_is_refused_at_once_naming_it(tmp_path: Path, args: list[str],
                                                     message: str) -> None:
    out = run(*args, cwd=tmp_path, env={"AFTERSALES_DB": STORE})
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines()[-1].endswith(f"error: {message}")
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no store, no page, no file


@pytest.mark.parametrize("command", ["report", "violations", "lapses", "disputes",
                                     "discrepancies"])
def test_a_window_that_ends_before_it_starts_is_refused(tmp_path: Path,
                                                         command: str) -> None:
    out = run(command, "--since", SINCE, "--until", UNTIL, cwd=tmp_path,
              env={"AFTERSALES_DB": STORE})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (f"aftersales: --since {SINCE} is not before --until {UNTIL}: the "
                          "window is empty\n")


def test_version_and_json_are_alike_on_every_command_that_prints_data(tmp_path: Path) -> None:
    version = run("--version", cwd=tmp_path)
    assert version.returncode == 0
    assert version.stdout == f"aftersales {metadata.version('aftersales')}\n"
    lines = ('{"command":"place_order","order_id":"D1","at":"2026-03-01T10:00:00+08:00",'
             '"payment":"online","merchant_id":"M1","user_id":"U1","goods_amount":100}\n')
    (tmp_path / "c.jsonl").write_text(lines)
    assert run("ingest", "c.jsonl", "--db", STORE, cwd=tmp_path).returncode == 0
    for command in (["status", "D1"], ["history", "D1"], ["violations"], ["lapses"],
                    ["disputes"], ["discrepancies"], ["report"]):
        short = run(*command, "--json", "--db", STORE, cwd=tmp_path)
        long = run(*command, "--format", "json", "--db", STORE, cwd=tmp_path)
        assert short.returncode == long.returncode == 0, short.stderr + long.stderr
        assert short.stdout == long.stdout and short.stdout.lstrip()[:1] in "[{"
