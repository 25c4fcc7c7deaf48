"""A file of the wrong kind given to `aftersales ingest` (issue 26, item 8): a CSV file, a
compressed or binary file, a Douyin feed without `--format douyin`, a command file with
it; from a path or from standard input.  Each is refused once, as a whole, before any
store is opened (none is created), naming what to run instead; standard input read to
tell its kind is not lost, and a producer that waits for acknowledgements is not
waited for."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import ONLINE_RETURN, run
from tests.reliability.test_store_failures import Running

pytestmark = pytest.mark.slow


def refused_once(found: object, *said: str) -> str:
    """The one line a refused file gives (exit 2, nothing on standard output)."""
    assert getattr(found, "returncode", None) == 2, found
    stderr, stdout = getattr(found, "stderr", ""), getattr(found, "stdout", "")
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aftersales: "), stderr
    assert "nothing was applied" in lines[0] and stdout == ""
    for text in said:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def douyin_feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated Douyin feed: its order export (place_order lines) first, then bodies."""
    where = tmp_path_factory.mktemp("feed")
    made = run("gen", "--platform", "douyin", "--orders", "40", cwd=where)
    assert made.returncode == 0, made.stderr
    path = where / "feed.jsonl"
    path.write_text(made.stdout)
    return path


def test_a_douyin_feed_without_its_format_is_refused_naming_the_flag(
        tmp_path: Path, douyin_feed: Path) -> None:
    lines = douyin_feed.read_text().splitlines()
    first_body = next(n for n, line in enumerate(lines, 1) if '"command"' not in line)
    assert first_body > 40  # its order export comes first
    store = tmp_path / "l.db"
    found = run("ingest", str(douyin_feed), "--db", f"sqlite:///{store}", cwd=tmp_path)
    refused_once(found, f"is a Douyin feed: line {first_body} is a push body",
                 f"`aftersales ingest --format douyin {douyin_feed}`")
    assert not store.exists()  # not one place_order line was applied
    piped = run("ingest", "-", "--db", f"sqlite:///{store}", cwd=tmp_path,
                stdin=douyin_feed.read_text())
    refused_once(piped, "standard input is a Douyin feed",
                 "`aftersales ingest --format douyin -`")
    assert not store.exists()
    right = run("ingest", "--format", "douyin", "-", "--db", f"sqlite:///{store}",
                cwd=tmp_path, stdin=douyin_feed.read_text())
    assert right.returncode == 0, right.stderr
    assert right.stdout.startswith(f"{len(lines):,} lines: ")  # nothing lost to the peek


def test_a_command_file_with_the_douyin_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text(ONLINE_RETURN)
    store = tmp_path / "l.db"
    found = run("ingest", "--format", "douyin", "c.jsonl", "--db", f"sqlite:///{store}",
                cwd=tmp_path)
    refused_once(found, "c.jsonl holds ledger commands and no Douyin push body",
                 "read without --format douyin: `aftersales ingest c.jsonl`")
    assert not store.exists()
    piped = run("ingest", "--format", "douyin", "-", "--db", f"sqlite:///{store}",
                cwd=tmp_path, stdin=ONLINE_RETURN)
    refused_once(piped, "standard input holds ledger commands and no Douyin push body")
    plain = run("ingest", "-", "--db", f"sqlite:///{store}", cwd=tmp_path,
                stdin=ONLINE_RETURN)
    assert plain.stdout.startswith("10 lines: 6 applied")  # every line, after the peek


def test_csv_compressed_and_binary_files_are_refused_as_a_whole(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "order_id,at,command\nD1,2026-03-01T10:00:00+08:00,place_order\n")
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(ONLINE_RETURN.encode()))
    (tmp_path / "python.bin").write_bytes(Path(sys.executable).read_bytes()[:4096])
    (tmp_path / "gbk.jsonl").write_bytes(
        '{"command": "cancel", "order_id": "D1", "reason": "不要了"}\n'.encode("gbk"))
    store = tmp_path / "l.db"
    url = f"sqlite:///{store}"
    refused_once(run("ingest", "orders.csv", "--db", url, cwd=tmp_path),
                 "orders.csv looks like CSV, not JSON: its line 1 is `order_id,at,command`",
                 "reads JSON Lines, one command (a JSON object) per line")
    refused_once(run("ingest", "c.jsonl.gz", "--db", url, cwd=tmp_path),
                 "c.jsonl.gz is gzip-compressed",
                 "`gunzip -c c.jsonl.gz | aftersales ingest -`")
    refused_once(run("ingest", "--format", "douyin", "c.jsonl.gz", "--db", url,
                     cwd=tmp_path),
                 "`gunzip -c c.jsonl.gz | aftersales ingest --format douyin -`")
    refused_once(run("ingest", "python.bin", "--db", url, cwd=tmp_path),
                 "python.bin is not text (a NUL byte at byte ")
    refused_once(run("ingest", "gbk.jsonl", "--db", url, cwd=tmp_path),
                 "gbk.jsonl is not UTF-8 text (byte ", "iconv -f GBK -t UTF-8 gbk.jsonl")
    refused_once(run("ingest", "-", "--db", url, cwd=tmp_path,
                     stdin=(tmp_path / "orders.csv").read_text()),
                 "standard input looks like CSV")
    assert not store.exists()


def test_standard_input_is_judged_on_its_first_line_not_waited_for(tmp_path: Path) -> None:
    """A producer that writes a line and waits for its acknowledgement before the next
    (`--ack`): the kind is told from what has come, and the line is not lost."""
    lines = ONLINE_RETURN.splitlines()
    ingest = Running(["ingest", "-", "--ack", "--batch", "1", "--db",
                      f"sqlite:///{tmp_path / 'l.db'}"], tmp_path, fed=True)
    ingest.feed(lines[:1])
    assert ingest.until(ingest.out, "ack ").startswith("ack 1 applied")
    ingest.feed(lines[1:], end=True)
    assert ingest.wait() == 1  # (it holds refused lines of its own)
    summary = [line for line in ingest.stdout if not line.startswith("ack ")]
    assert summary[0].startswith("10 lines: 6 applied"), ingest.stdout
