"""Telling the kind of file `ingest` was given from its first lines (issue 26, item 8):
compressed, not text, not UTF-8, CSV, a JSON document spread over lines, a Douyin feed
(both envelope spellings, received bodies, after an order export) and a command file."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path

import pytest

from aftersales.ingest.sniff import (
    ARRAY,
    BINARY,
    COMMANDS,
    COMPRESSED,
    CSV,
    DOUYIN,
    EMPTY,
    HEAD,
    NOT_UTF8,
    SPREAD,
    TEXT,
    Kind,
    sniff,
    wrong_kind,
)
from tests.douyin_bodies import BIG, T0, body, paid, place, requested

PAY = json.dumps({"command": "pay", "order_id": "D1", "at": "2026-03-01T10:05:00+08:00"})
COMMAND_FILE = (place().decode() + "\n" + PAY + "\n").encode()


def kind_of(data: bytes, complete: bool = True) -> Kind:
    return sniff(data, complete=complete)


@pytest.mark.parametrize(("data", "expected"), [
    (gzip.compress(COMMAND_FILE), "gzip"),
    (bz2.compress(COMMAND_FILE), "bzip2"),
    (lzma.compress(COMMAND_FILE), "xz"),
    (b"PK\x03\x04\x14\x00\x00\x00", "zip"),
], ids=["gzip", "bzip2", "xz", "zip"])
def test_a_compressed_file_is_told_by_its_magic_bytes(data: bytes, expected: str) -> None:
    assert kind_of(data) == Kind(COMPRESSED, 0, expected)


def test_a_file_that_is_not_text_or_not_utf8_is_told_with_where() -> None:
    assert kind_of(COMMAND_FILE + b"\x7fELF\x00\x01") == Kind(
        BINARY, 3, f"a NUL byte at byte {len(COMMAND_FILE) + 5}")
    assert kind_of(COMMAND_FILE.decode().encode("utf-16")).seen.startswith("UTF-16")
    gbk = '{"command":"cancel","reason":"买家不想要了"}\n'.encode("gbk")
    found = kind_of(gbk)
    assert (found.name, found.line) == (NOT_UTF8, 1)
    assert found.seen == f"byte 31 is 0x{gbk[30]:02x}"


def test_a_character_cut_by_the_end_of_the_head_is_not_an_encoding_error() -> None:
    text = json.dumps({"command": "cancel", "reason": "买家不想要了"},
                      ensure_ascii=False).encode()
    assert kind_of(text[:-3], complete=False).name == COMMANDS  # a line longer than the head
    assert kind_of(text[:-3], complete=True).name == NOT_UTF8


def test_a_line_or_two_of_another_encoding_is_refused_alone_not_the_file() -> None:
    """A command file with a stray byte on a line (refused `INPUT` on its own), unlike a
    file most of whose lines are not UTF-8."""
    assert kind_of(COMMAND_FILE + b'\xff\xfe{"command": "pay"}\n' + COMMAND_FILE
                   ).name == COMMANDS
    gbk = '{"command":"cancel","reason":"不要了"}\n'.encode("gbk")
    assert kind_of(COMMAND_FILE + gbk * 3) == Kind(
        NOT_UTF8, 3, f"byte {len(COMMAND_FILE) + 31} is 0x{gbk[30]:02x}")


def test_csv_and_other_text_without_a_json_object() -> None:
    assert kind_of(b"order_id,at,command\nD1,2026-03-01T10:00:00+08:00,pay\n") == Kind(
        CSV, 1, "order_id,at,command")
    assert kind_of(b"\n\norder_id\tat\nD1\t2026\n") == Kind(CSV, 3, "order_id\\tat")
    # What a message shows of the file: control characters escaped, and shortened.
    assert kind_of(b"id,\x1b[31mred\n").seen == "id,\\x1b[31mred"
    assert kind_of(b"x" * 100 + b",\n").seen == "x" * 57 + "..."
    assert kind_of(b"hello\nworld\n") == Kind(TEXT, 1, "hello")
    assert kind_of(b"") == Kind(EMPTY) and kind_of(b"\n \n") == Kind(EMPTY)


def test_json_spread_over_lines_and_arrays_of_commands() -> None:
    assert kind_of(b'[\n  {"command": "tick"}\n]\n') == Kind(SPREAD, 1, "[")
    assert kind_of(b'{\n  "command": "tick"\n}\n') == Kind(SPREAD, 1, "{")
    assert kind_of(b'[{"command": "tick",\n  "at": "2026"}]\n') == Kind(SPREAD, 1, "[")
    assert kind_of(b'[{"command": "tick", "at": "2026"}]\n') == Kind(ARRAY, 1)


def test_a_command_file_with_a_broken_first_line_is_still_a_command_file() -> None:
    """One mistyped line is refused on its own; the file is not judged by it."""
    assert kind_of(b'{"command": "pay", "order_id": \n' + COMMAND_FILE).name == COMMANDS
    assert kind_of(b"\xef\xbb\xbf" + COMMAND_FILE).name == COMMANDS  # a spreadsheet's BOM
    assert kind_of(b"not json\n" + COMMAND_FILE).name == COMMANDS


@pytest.mark.parametrize("spelling", ["official", "camel"])
def test_douyin_bodies_in_either_spelling_and_received(spelling: str) -> None:
    bare = body(paid("m1", spelling=spelling))
    received = body(paid("m2", spelling=spelling), received_at=T0)
    one_message = json.dumps(json.loads(bare)[0]).encode()
    for line in (bare, received, one_message):
        assert kind_of(line + b"\n") == Kind(DOUYIN, 1)
    assert kind_of(COMMAND_FILE + b"\n" + received + b"\n") == Kind(DOUYIN, 4)
    assert kind_of(b"".join(x + b"\n" for x in requested(0))).name == DOUYIN


def test_a_first_line_longer_than_the_head_is_told_by_how_it_begins() -> None:
    huge = body(*[paid(f"m{n}", BIG + n) for n in range(40)])
    assert kind_of(huge[:200], complete=False) == Kind(DOUYIN, 1)


def test_wrong_kind_names_the_flag_to_use(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(COMMAND_FILE + body(paid("m1")) + b"\n")
    commands = tmp_path / "c.jsonl"
    commands.write_bytes(COMMAND_FILE)
    said = wrong_kind(str(feed), "commands")
    assert said is not None and "line 3 is a push body" in said
    assert f"`aftersales ingest --format douyin {feed}`" in said
    assert wrong_kind(str(feed), "douyin") is None
    assert wrong_kind(str(commands), "commands") is None
    said = wrong_kind(str(commands), "douyin")
    assert said is not None and "without --format douyin" in said
    packed = tmp_path / "c.jsonl.gz"
    packed.write_bytes(gzip.compress(COMMAND_FILE))
    assert wrong_kind(str(packed), "douyin") == (
        f"{packed} is gzip-compressed: nothing was applied; decompress it first: "
        f"`gunzip -c {packed} | aftersales ingest --format douyin -`")


def test_a_feed_whose_order_export_fills_the_head_is_found_further_on(tmp_path: Path
                                                                     ) -> None:
    """The rest of a file is searched in blocks; a body line cut by a block's end, and the
    line numbers after several blocks, come out right."""
    export = [place(BIG + n).decode() for n in range(HEAD // 200 * 6)]
    lines = [*export, body(paid("m1")).decode()]
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 5 * HEAD
    said = wrong_kind(str(path), "commands")
    assert said is not None and f"line {len(lines)} is a push body" in said
    path.write_text("\n".join(export) + "\n")
    assert wrong_kind(str(path), "commands") is None
    said = wrong_kind(str(path), "douyin")
    assert said is not None and "no Douyin push body" in said
