"""Store URL traps (issue 26, items 9 and 11): a PostgreSQL port nothing listens on is said
at once, not waited for a minute (a service still waits for its store to start); a
`sqlite:///` URL is a relative path, and a missing ledger names the file it resolved to and
the four-slash form; a read-only copy of a SQLite ledger is read by the commands that only
read, and a command that writes says why it cannot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_cli import ONLINE_RETURN, run
from tests.faults import SmallDisk, free_port

pytestmark = pytest.mark.slow


def one_line(found: object) -> str:
    stderr = getattr(found, "stderr", "")
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aftersales: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("command", [["status", "D1"], ["history", "D1"], ["report"],
                                     ["ingest", "-"], ["db", "check"]],
                         ids=lambda c: " ".join(c))
def test_a_postgres_port_nothing_listens_on_is_said_at_once(tmp_path: Path,
                                                            command: list[str]) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/aftersales_test"
    found = run(*command, "--db", url, cwd=tmp_path, stdin=ONLINE_RETURN)
    assert found.returncode == 3
    said = one_line(found)  # no "waiting … for up to 60 s more" before it
    assert "Connection refused: nothing accepts connections at 127.0.0.1 port " in said
    assert "check the host and port of the URL" in said


def test_a_service_waits_for_a_postgres_server_that_is_not_up_yet(tmp_path: Path) -> None:
    """`project --follow` (and `serve-webhook`) may start before their database: they wait
    for it (here bounded by --retry-for), saying so."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/aftersales_test"
    found = run("project", "--follow", "--retry-for", "1", "--db", url, cwd=tmp_path)
    assert found.returncode == 3
    lines = [x for x in found.stderr.splitlines() if x]  # (waiting: after a "\r")
    assert lines[0].startswith("aftersales: waiting: opening the ledger: ") and \
        "Connection refused" in lines[0]
    assert "gave up after retrying for" in lines[-1]


def test_three_slashes_name_a_relative_path_and_the_four_slash_form_is_offered(
        tmp_path: Path) -> None:
    ledger = tmp_path / "real" / "l.db"
    ledger.parent.mkdir()
    assert run("ingest", "-", "--db", f"sqlite:///{ledger}", cwd=tmp_path,
               stdin=ONLINE_RETURN).returncode == 1  # (it holds refused lines)
    work = tmp_path / "work"
    work.mkdir()
    three = f"sqlite://{ledger}"  # meant as sqlite:///{ledger}: the path is relative
    assert three.startswith("sqlite:///") and not three.startswith("sqlite:////")
    relative = three.removeprefix("sqlite:///")
    found = run("status", "D1", "--db", three, cwd=work)
    assert found.returncode == 2
    said = one_line(found)
    assert f"(a relative path: the file {work / relative}, in the working directory; " \
        f"for {ledger}, give four slashes: sqlite:///{ledger})" in said
    created = run("ingest", "-", "--db", three, cwd=work, stdin=ONLINE_RETURN)
    assert created.returncode == 3
    said = one_line(created)
    assert f"its directory {(work / relative).parent} does not exist" in said
    assert f"give four slashes: sqlite:///{ledger}" in said
    assert list(work.iterdir()) == []  # nothing was created


READERS = [["status", "D1"], ["history", "D1"], ["verify"], ["report"], ["violations"],
           ["lapses"], ["disputes"], ["discrepancies"], ["project"]]


def test_a_read_only_copy_is_read_by_the_commands_that_only_read(tmp_path: Path) -> None:
    disk = SmallDisk(tmp_path / "disk", "8m")
    try:
        url = f"sqlite:///{disk.path / 'ledger.db'}"
        assert run("ingest", "-", "--db", url, cwd=tmp_path,
                   stdin=ONLINE_RETURN).returncode == 1  # (it holds refused lines)
        expected = {" ".join(c): run(*c, "--db", url, cwd=tmp_path).stdout for c in READERS}
        disk.remount("ro")
        assert sorted(os.listdir(disk.path)) == ["ledger.db"]  # no -wal, no -shm
        for command in READERS:
            found = run(*command, "--db", url, cwd=tmp_path)
            assert found.returncode == 0, (command, found.stderr)
            assert found.stdout == expected[" ".join(command)], command
        tick = run("tick", "--now", "2026-04-01T00:00:00+08:00", "--db", url, cwd=tmp_path)
        assert tick.returncode == 3
        said = one_line(tick)
        assert "attempt to write a readonly database (it is read here only: a read-only " \
            "file system" in said and "to write, copy it" in said
    finally:
        disk.unmount()


def test_a_copy_is_read_as_the_url_asks_mode_ro_or_immutable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert run("ingest", "-", "--db", url, cwd=tmp_path,
               stdin=ONLINE_RETURN).returncode == 1  # (it holds refused lines)
    shutil.copy(tmp_path / "ledger.db", tmp_path / "copy.db")
    expected = run("status", "D1", "--db", url, cwd=tmp_path).stdout
    for asked in ("?immutable=1", "?mode=ro"):
        found = run("status", "D1", "--db", f"sqlite:///{tmp_path / 'copy.db'}{asked}",
                    cwd=tmp_path)
        assert (found.returncode, found.stdout) == (0, expected), found.stderr
        if asked == "?immutable=1":  # nothing made beside it
            assert sorted(p.name for p in tmp_path.glob("copy.db*")) == ["copy.db"]
        writing = run("ingest", "-", "--db", f"sqlite:///{tmp_path / 'copy.db'}{asked}",
                      cwd=tmp_path, stdin=ONLINE_RETURN.replace("D1", "D2"))
        assert writing.returncode == 3 and "it is read here only" in writing.stderr
    unknown = run("status", "D1", "--db", f"{url}?mode=rwc", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "known ones are mode=ro (read only) and immutable=1" in one_line(unknown)
