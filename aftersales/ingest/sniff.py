"""What kind of file `aftersales ingest` was given, told from its first lines (sniffing),
so that a file of the wrong kind is refused once, as a whole, before anything is opened or
applied, naming what to do instead, rather than refused line by line while the lines
that happen to parse are applied.

Kinds told apart (`sniff`):
- a command file (JSON Lines of ledger commands): read without `--format douyin`;
- a Douyin feed: push bodies (a JSON array of messages, or `{"received_at", "body"}`),
  perhaps after an order export of command lines: read with `--format douyin`;
- one JSON document over several lines, or a JSON array of commands on one line;
- a compressed file (gzip, bzip2, xz, zstd, zip), by its magic bytes;
- a file that is not text (a NUL byte, UTF-16) or not UTF-8;
- CSV (a header line with delimiters, no JSON object), or other text with no JSON object.

A file is judged on its first `HEAD` bytes; a command file's rest is then searched for a
push body (`find_push`: a byte search, then a parse of only the lines it points at: 0.24 s
of CPU for 474,000 lines, 52 MB), since a feed's order export may fill its first megabyte.
Standard input is judged on its first `HEAD` bytes (as a command file's batch of 7,500
lines is waited for anyway), or with `--ack` on its first line alone (its producer may
wait for each acknowledgement before it writes more); what was read is put back.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

#: How much of a file's start is judged line by line.
HEAD = 1 << 20
#: How much of the rest is searched for a push body at a time.
CHUNK = 4 << 20
#: What begins each compressed format, and how to read it out.
MAGIC = ((b"\x1f\x8b", "gzip", "gunzip -c"), (b"BZh", "bzip2", "bunzip2 -c"),
         (b"\xfd7zXZ\x00", "xz", "xz -dc"), (b"\x28\xb5\x2f\xfd", "zstd", "zstd -dc"),
         (b"PK\x03\x04", "zip", "unzip -p"))
#: How each reads a stream (standard input), where that differs.
STREAMED = {"zip": "funzip"}
#: A line that may be a push body holds one of these (or starts with `[`).
PUSH_MARKS = (b'"tag"', b'"body"')
#: How a push body (or a received one) begins: for a first line longer than the head.
_PUSH_START = re.compile(r'\[\s*\{\s*"(tag|msg_id|msgId)"|\{\s*"(received_at|body)"')

COMMANDS, DOUYIN, EMPTY = "commands", "douyin", "empty"
ARRAY, SPREAD, COMPRESSED, BINARY, NOT_UTF8, CSV, TEXT = (
    "array", "spread", "compressed", "binary", "not-utf8", "csv", "text")


@dataclass(frozen=True)
class Kind:
    """What a file is: `name` (the constants above), the line that tells it (0: none),
    and what was seen there."""

    name: str
    line: int = 0
    seen: str = ""


def wrong_kind(path: str, fmt: str, *, acked: bool = False) -> str | None:
    """Why the file at `path` (`-`: standard input, put back after) cannot be ingested as
    `fmt` (`commands` or `douyin`), as one line to print (None: it can, as far as its
    first lines tell).  A file that cannot be opened is not judged here.  `acked`: each
    line is acknowledged as it is recorded (`--ack`), so the producer of standard input
    may wait for that before it writes the next: only its first line is waited for."""
    if path == "-":
        head, complete = _stdin_head(first_line=acked)
        kind = sniff(head, complete=complete)
    else:
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return None  # a pipe (`<(…)`): what is read of it would be lost
            with open(path, "rb") as f:
                head = f.read(HEAD)
                complete = len(head) < HEAD or not f.peek(1)
                kind = sniff(head, complete=complete)
                if kind.name in (COMMANDS, EMPTY) and not complete:
                    start = head.rfind(b"\n") + 1
                    found = find_push(f, head[start:], head.count(b"\n", 0, start) + 1)
                    if found is not None:
                        kind = Kind(DOUYIN, found)
                    complete = True
        except OSError:
            return None  # said when it is opened
    return refusal(kind, path, fmt, complete)


def sniff(head: bytes, *, complete: bool) -> Kind:
    """The kind of a file whose first bytes are `head` (`complete`: the whole file)."""
    for magic, name, _ in MAGIC:
        if head.startswith(magic):
            return Kind(COMPRESSED, 0, name)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Kind(BINARY, 0, "UTF-16 text (save it as UTF-8)")
    if (nul := head.find(b"\0")) >= 0:
        return Kind(BINARY, head.count(b"\n", 0, nul) + 1, f"a NUL byte at byte {nul + 1}")
    bom = 3 if head.startswith(b"\xef\xbb\xbf") else 0  # a spreadsheet's: not an error
    raw_lines = head[bom:].split(b"\n")
    cut_short = not complete and len(raw_lines) > 1
    if cut_short:
        raw_lines.pop()  # cut short by the head's end
    numbered, bad = [], []
    for n, raw in enumerate(raw_lines, 1):
        line, wrong = _decoded(raw, complete or n < len(raw_lines))
        if line.strip():
            numbered.append((n, line.strip()))
            if wrong is not None:
                bad.append((n, wrong))
    if len(bad) * 2 > len(numbered):  # a line or two of another encoding: refused alone
        n, wrong = bad[0]
        offset = bom + len(b"\n".join(raw_lines[:n - 1])) + (n > 1) + wrong
        return Kind(NOT_UTF8, n, f"byte {offset + 1} is 0x{head[offset]:02x}")
    if not numbered:
        return Kind(EMPTY)
    (first_number, first), second = numbered[0], (numbered[1:2] or [(0, "")])[0][1]
    if first in ("[", "{") or (first[:1] in ("[", "{") and second[:1] in ('"', "]", "}")
                               and _shape(first) == "broken"):
        return Kind(SPREAD, first_number, first[:1])
    shapes = [(n, _shape(line)) for n, line in numbered]
    push = next((n for n, shape in shapes if shape == "push"), None)
    if push is None and not complete and not cut_short and _PUSH_START.match(first):
        push = first_number  # one line longer than the head: by how it begins
    if push is not None:
        return Kind(DOUYIN, push)
    if shapes[0][1] == "array":
        return Kind(ARRAY, first_number)
    if not any(shape in ("object", "array", "broken") for _, shape in shapes):
        looks = _shown(first)
        if any(mark in first for mark in (",", "\t", ";")):
            return Kind(CSV, first_number, looks)
        return Kind(TEXT, first_number, looks)
    return Kind(COMMANDS)


def find_push(stream: BinaryIO, carry: bytes, number: int) -> int | None:
    """The number of the first line of the rest of a file that is a push body (None:
    none is), reading on from `stream`; `carry` is the start of line `number`, read
    already."""
    for block in _blocks(stream, carry):
        looked = -1
        for hit in _candidates(block):
            begin = block.rfind(b"\n", 0, hit) + 1
            if begin == looked:
                continue  # (another mark of a line looked at)
            looked, end = begin, block.find(b"\n", hit)
            line = block[begin:] if end < 0 else block[begin:end]
            if _shape(line.decode("utf-8", "replace").strip()) == "push":
                return number + block.count(b"\n", 0, begin)
        number += block.count(b"\n")
    return None


def refusal(kind: Kind, path: str, fmt: str, complete: bool = True) -> str | None:
    """What to say of a file of this kind given as `fmt` (None: nothing, read it)."""
    name = "standard input" if path == "-" else path
    douyin = " --format douyin" if fmt == DOUYIN else ""
    nothing = "nothing was applied"
    at = f" (line {kind.line})" if kind.line > 1 else ""
    if kind.name == EMPTY or (kind.name == DOUYIN and fmt == DOUYIN):
        return None
    if kind.name == COMMANDS:
        if fmt != DOUYIN or not complete:
            return None
        return (f"{name} holds ledger commands and no Douyin push body: {nothing}; a "
                f"command file is read without --format douyin: `aftersales ingest {path}`")
    if kind.name == DOUYIN:
        return (f"{name} is a Douyin feed: line {kind.line} is a push body; {nothing}; "
                f"read it with `aftersales ingest --format douyin {path}`")
    array = (f"{name} is a JSON array: a command file is JSON Lines, one command (a JSON "
             f"object) per line; {nothing} (convert it with `jq -c '.[]'`")
    if kind.name == ARRAY:
        return array + (", and read it without --format douyin: it holds no push message)"
                        if fmt == DOUYIN else ")")
    if kind.name == SPREAD:
        if kind.seen == "[" and fmt != DOUYIN:
            return array + ")"
        each = "push body" if fmt == DOUYIN else "command (a JSON object)"
        return (f"{name} is one JSON document spread over several lines{at}: a "
                f"{'feed' if fmt == DOUYIN else 'command file'} has one {each} per line; "
                f"{nothing} (put each on one line: `jq -c . {path}`)")
    if kind.name == COMPRESSED:
        tool = next(how for _, found, how in MAGIC if found == kind.seen)
        how = (f"… | {STREAMED.get(kind.seen, tool)} |" if path == "-" else f"{tool} {path} |")
        return (f"{name} is {kind.seen}-compressed: {nothing}; decompress it first: "
                f"`{how} aftersales ingest{douyin} -`")
    reads = f"`aftersales ingest{douyin}` reads " + (
        "Douyin push bodies, one per line, as docs/platforms/douyin.md shows"
        if fmt == DOUYIN else
        "JSON Lines, one command (a JSON object) per line, as docs/commands.md shows")
    if kind.name == BINARY:
        return f"{name} is not text ({kind.seen}{at}): {nothing}; {reads}, in UTF-8"
    if kind.name == NOT_UTF8:
        return (f"{name} is not UTF-8 text ({kind.seen}{at}): {nothing}; convert it first, "
                f"e.g. from GBK: `iconv -f GBK -t UTF-8 {path} | aftersales "
                f"ingest{douyin} -`")
    if kind.name == CSV:
        return (f"{name} looks like CSV, not JSON: its line {kind.line} is `{kind.seen}` "
                f"and none of its first lines is a JSON object; {nothing}; {reads}, not CSV")
    return (f"{name} is not JSON Lines: its line {kind.line} is `{kind.seen}` and none of "
            f"its first lines is a JSON object; {nothing}; {reads}")


def _decoded(raw: bytes, whole: bool) -> tuple[str, int | None]:
    """A line as text (what is not UTF-8 replaced), and where its first byte that is not
    UTF-8 is (None: none is; a character cut by the head's end, unless `whole`, is not
    counted)."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        if not whole and e.reason == "unexpected end of data" and e.start >= len(raw) - 3:
            return raw[:e.start].decode("utf-8", "replace"), None
        return raw.decode("utf-8", "replace"), e.start


def _shape(line: str) -> str:
    """What one line (stripped) is: `push` (a body, a received body or one message),
    `object` (another JSON object: a command, or not), `array` (another JSON array),
    `broken` (begins as JSON but does not parse), or `other`."""
    if line[:1] not in ("[", "{"):
        return "other"
    doc = _load(line)
    if doc is None:
        return "broken"
    if isinstance(doc, list):
        return "push" if any(_message(x) for x in doc) else "array"
    if isinstance(doc, dict):
        if "command" not in doc and (isinstance(doc.get("body"), list) or _message(doc)):
            return "push"
        return "object"
    return "broken"


def _message(doc: Any) -> bool:
    """Whether a value is shaped as a push message (a tag, and an id or data)."""
    return isinstance(doc, dict) and "tag" in doc and "command" not in doc and (
        "msg_id" in doc or "msgId" in doc or "data" in doc)


def _load(line: str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    try:  # integers beyond 64 bits (ids), NaN: what orjson does not read
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _shown(line: str, most: int = 60) -> str:
    """A line of the file as a message shows it: shortened, its control characters
    escaped (a terminal would act on them)."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in line[:most])
    shown = shown.replace("`", "'")
    return shown if len(line) <= most and len(shown) <= most else shown[:most - 3] + "..."


def _blocks(stream: BinaryIO, carry: bytes) -> Iterator[bytes]:
    """The rest of a file in blocks of whole lines (the last perhaps without its
    newline), `carry` (read already) first."""
    while chunk := stream.read(CHUNK):
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            continue
        yield data[:cut]
        carry = data[cut:]
    if carry:
        yield carry


def _candidates(block: bytes) -> list[int]:
    """Offsets in a block, in order, of what may make a line a push body (a line may be
    pointed at more than once)."""
    return sorted({i for mark in PUSH_MARKS for i in _all(block, mark)}
                  | {i + 1 for i in _all(block, b"\n[")}
                  | ({0} if block[:1] == b"[" else set()))


def _all(block: bytes, mark: bytes) -> Iterator[int]:
    at = block.find(mark)
    while at >= 0:
        yield at
        at = block.find(mark, block.find(b"\n", at) + 1 or len(block))


def _stdin_head(first_line: bool) -> tuple[bytes, bool]:
    """The first `HEAD` bytes of standard input (or all of it, if less), or only what has
    come once its first line with something on it is complete (`first_line`); whether
    that is all of it.  What was read is put back: `sys.stdin` reads it again first."""
    if sys.stdin is None:  # (no standard input at all: nothing to read)
        return b"", True
    source = sys.stdin.buffer
    read = getattr(source, "read1", source.read)  # (a buffered reader: what has come)
    head, ended = b"", False
    while len(head) < HEAD:
        chunk = read(HEAD - len(head))
        if not chunk:
            ended = True
            break
        head += chunk
        if first_line and head.strip() and b"\n" in head.lstrip():
            break
    sys.stdin = io.TextIOWrapper(io.BufferedReader(_Replayed(head, source)),
                                 encoding=sys.stdin.encoding, errors=sys.stdin.errors)
    return head, ended


class _Replayed(io.RawIOBase):
    """A stream that gives `head` first, then what `rest` gives."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._rest.fileno()

    def readinto(self, buffer: Any) -> int:
        if len(self._head):
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        read = getattr(self._rest, "read1", self._rest.read)
        data = read(len(buffer))
        buffer[:len(data)] = data
        return len(data)
