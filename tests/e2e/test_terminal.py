"""Long work on a terminal: its progress bar runs to the end, and Ctrl-C, as a person
presses it.  For Ctrl-C the command runs under a pseudo-terminal
of the test's own and the test types ^C into it, so the terminal sends SIGINT to the whole
foreground process group (parallel workers included).  Each command then prints one line,
where it stopped and how to go on, exits 130 with no traceback, and running it again
goes on to the same end as a run never interrupted."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.test_cli import run

#: How long a test waits for the command's output before failing (a bound, never a wait).
PATIENCE = 300.0


def under_terminal(args: list[str], cwd: Path, interrupt_when: Callable[[bytes], bool],
                   ) -> tuple[int, str, bool]:
    """Run `aftersales ARGS` on a terminal of its own; type ^C once `interrupt_when`
    holds for its output so far.  Its exit code, all it printed, and whether ^C was
    typed (the command may have finished first)."""
    env = {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"}
    env["COLUMNS"] = "100"
    pid, master = pty.fork()
    if pid == 0:  # the child: the terminal's foreground process group
        os.chdir(cwd)
        os.execvpe(sys.executable, [sys.executable, "-m", "aftersales", *args], env)
    seen, typed = b"", False
    try:
        while True:
            ready, _, _ = select.select([master], [], [], PATIENCE)
            assert ready, f"no output for {PATIENCE} s: {seen[-2000:]!r}"
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: every process on it is gone
                break
            if not chunk:
                break
            seen += chunk
            if not typed and interrupt_when(seen):
                os.write(master, b"\x03")
                typed = True
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace"), typed


def said(output: str) -> list[str]:
    """The lines of the command's own messages (without progress redraws, or the ^C the
    terminal echoes)."""
    shown = [line.split("\r")[-1] for line in output.replace("\r\n", "\n").split("\n")]
    return [line[line.index("aftersales:"):] for line in shown if "aftersales:" in line]


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("interrupt")
    lines = run("gen", "--orders", "1500", cwd=where)
    assert lines.returncode == 0
    (where / "w.jsonl").write_text(lines.stdout)
    return where / "w.jsonl"


def read_models(db: str, cwd: Path) -> tuple[object, ...]:
    """What the read models say, as a person would compare two stores."""
    found = []
    for command in ("violations", "lapses", "disputes", "report"):
        out = run(command, "--format", "json", "--db", db, cwd=cwd)
        assert out.returncode == 0, out.stderr
        found.append(json.loads(out.stdout))
    return tuple(found)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_an_ingest_in_one_line_and_running_it_again_goes_on(
    tmp_path: Path, workload: Path, workers: str,
) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    code, output, typed = under_terminal(
        ["ingest", str(workload), "--ack", "--batch", "100", "--workers", workers,
         "--db", db], tmp_path, lambda seen: b"\nack 700 " in seen)
    assert typed and code == 130
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    lines = said(output)
    assert len(lines) == 1, output[-3000:]
    assert lines[0].startswith("aftersales: interrupted (Ctrl-C) after line ")
    assert lines[0].endswith(f"of {workload}: what was committed is recorded; run the "
                             "same command again to carry on")

    again = run("ingest", str(workload), "--db", db, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert " already applied" in again.stdout and "0 refused" in again.stdout
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    assert run("ingest", str(workload), "--db", whole, cwd=tmp_path).returncode == 0
    assert read_models(db, tmp_path) == read_models(whole, tmp_path)


def past_first_batch(seen: bytes) -> bool:
    """The progress bar (which counts committed lines) shows the first 7,500 of the
    demo's ~10,000 lines recorded."""
    shares = re.findall(rb"(\d+\.\d)%", seen)
    return bool(shares) and float(shares[-1]) >= 75.0


def test_ctrl_c_stops_the_demo_which_then_says_what_to_do_and_db_check_gives_no_wrong_advice(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    code, output, typed = under_terminal(
        ["demo", "--orders", "2000", "--page", "", "--db", db], tmp_path,
        past_first_batch)
    assert typed and code == 130 and "Traceback" not in output
    assert said(output) == [
        "aftersales: interrupted (Ctrl-C): the demo's store is incomplete: remove it (or "
        "give another --db) and run the demo again"]

    check = run("db", "check", "--db", db, cwd=tmp_path)
    assert "db init" not in check.stdout + check.stderr
    assert "read models: not created (run `aftersales project`)" in check.stdout

    refused = run("demo", "--orders", "20", "--db", db, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith(f"aftersales: the store at {db} already holds events: "
                                     "the demo writes its made-up orders only into an "
                                     "empty store; nothing was written (remove ")


def test_ctrl_c_during_a_rebuild_leaves_the_read_models_as_they_were(
    tmp_path: Path, workload: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    assert run("ingest", str(workload), "--db", db, cwd=tmp_path).returncode == 0
    before = read_models(db, tmp_path)
    code, output, typed = under_terminal(["rebuild", "--db", db], tmp_path,
                                         lambda seen: b"rebuild" in seen)
    if not typed or code == 0:  # the rebuild finished before ^C reached it
        pytest.fail(f"the rebuild was not interrupted: {output[-500:]}")
    assert code == 130 and "Traceback" not in output
    assert said(output) == [
        "aftersales: interrupted (Ctrl-C): the read models are as they were (the "
        "unfinished rebuild is not used: the next one starts afresh); run `aftersales "
        "rebuild` again"]
    assert read_models(db, tmp_path) == before
    assert run("verify", "--db", db, cwd=tmp_path).returncode == 0
    again = run("rebuild", "--db", db, cwd=tmp_path)
    assert again.returncode == 0 and read_models(db, tmp_path) == before


def bars(output: str) -> list[float]:
    """The shares the progress bar showed, in order."""
    return [float(x) for x in re.findall(r"\] +(\d+\.\d)%", output)]


def test_verify_shows_one_bar_through_the_comparison_to_the_end(
    tmp_path: Path, workload: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    assert run("ingest", str(workload), "--db", db, cwd=tmp_path).returncode == 0
    code, output, _ = under_terminal(["verify", "--db", db], tmp_path, lambda seen: False)
    assert code == 0, output
    shown = bars(output)
    assert shown == sorted(shown) and shown[-1] == 100.0
    chained = output.index("verify: the chained record holds")
    assert output[:chained].endswith("\r\x1b[2K")  # the bar cleared before the lines
    # the chains are two thirds of the bar; the comparison with a rebuild the rest
    assert bars(output[:chained]) and max(bars(output[:chained])) <= 66.7
    assert output.rindex("100.0%") > output.index("verify: log head")
    assert "the read models equal a rebuild" in output[output.rindex("100.0%"):]


def test_a_douyin_feed_shows_its_progress_on_a_terminal_and_none_when_piped(
    tmp_path: Path,
) -> None:
    feed = run("gen", "--platform", "douyin", "--orders", "100", cwd=tmp_path)
    (tmp_path / "feed.jsonl").write_text(feed.stdout)
    code, output, _ = under_terminal(
        ["ingest", "--format", "douyin", "feed.jsonl", "--db", "sqlite:///t.db"],
        tmp_path, lambda seen: False)
    assert code in (0, 1), output
    assert bars(output)[-1] == 100.0
    piped = run("ingest", "--format", "douyin", "feed.jsonl", "--db", "sqlite:///p.db",
                cwd=tmp_path)
    assert "%" not in piped.stderr and "ingest [" not in piped.stderr
