"""Reading a platform's push bodies as they really arrive (SPEC section 10): the envelope in
both spellings, ids read exactly, times in either form, and nothing a body holds able to
stop the reader.

A feed line is one of:
- a push body: a JSON array of messages (one message object is a body of one);
- a received body: `{"received_at": "<ISO time>", "body": [...]}`, what the webhook keeps:
  the receive time is the time of the body's messages that carry none of their own;
- a ledger command line: an object with a `command` (read elsewhere).

A message is `{"tag": "200", "msg_id": "...", "data": "<JSON string>"}` (the official
spelling) or `{"tag": 200, "msgId": "...", "data": {...}}`.  Every failure to read is a
`CommandRefused('INPUT', …)` naming the message and the field: an unknown tag is not a
failure (it is counted and ignored), a tag that is not a number is.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from aftersales.domain import rules
from aftersales.errors import CommandRefused

ZONE = ZoneInfo("Asia/Shanghai")
#: The largest push body accepted (the webhook answers 413 above it).
MAX_BODY = 1 << 20
#: Digits an integer of a body may have: ids are 19-20 digits, amounts fewer (a number of
#: thousands of digits costs the parser quadratic time and is no id).
MAX_DIGITS = 40
#: How deep a body's JSON may nest (a message's `data` holds objects two or three deep).
MAX_DEPTH = 32
#: A received body wraps a body one level deeper.
RECEIVED_DEPTH = MAX_DEPTH + 1
#: Unix seconds of business time: 2000 to 2100.
EARLIEST, LATEST = 946684800, 4102444800


def refuse(text: str) -> CommandRefused:
    return CommandRefused(rules.INPUT, text)


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number of {len(text)} digits")
    return int(text)


class NotANumber:
    """`NaN`, `Infinity` or `-Infinity` where a body has one (not JSON, but a token some
    encoders write): kept as this marker, so that the field holding it is refused, naming
    its message, and the body's other messages stand."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _depth_ok(text: str, most: int = MAX_DEPTH) -> bool:
    """Whether the JSON text nests at most `most` deep (brackets in strings aside)."""
    if text.count("[") + text.count("{") <= most:  # cannot nest deeper: the walk below,
        return True  # a character at a time, was a tenth of a feed's CPU
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > most:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def load(text: str, what: str, depth: int = MAX_DEPTH) -> Any:
    """JSON text as values (integers exact, fractions as Decimal, NaN and Infinity as
    `NotANumber`), or INPUT naming `what`: not JSON, nested more than `depth` deep, a
    number too long."""
    if not _depth_ok(text, depth):
        raise refuse(f"{what}: nested more than {MAX_DEPTH} deep")
    try:  # orjson first: the standard parser calling `_integer` for every number cost
        found = orjson.loads(text)  # a quarter of reading a feed
    except orjson.JSONDecodeError:
        pass  # not JSON, or a token orjson does not read (NaN, a lone surrogate): below
    else:
        if _exact(found):
            return found
    try:
        return json.loads(text, parse_int=_integer, parse_float=Decimal,
                          parse_constant=NotANumber)
    except json.JSONDecodeError as e:
        raise refuse(f"{what}: not JSON: {e.msg} at column {e.colno}") from None
    except (ValueError, RecursionError, InvalidOperation) as e:
        raise refuse(f"{what}: not JSON a push can hold: {e}") from None


def _exact(value: Any) -> bool:
    """Whether orjson read every number exactly: it reads a fraction, an exponent and an
    integer beyond 64 bits as a float (those are read again, as Decimal or int); an
    integer it reads exactly has at most 20 digits, within `MAX_DIGITS`."""
    kind = type(value)
    if kind is dict:
        values: Any = value.values()
    elif kind is list:
        values = value
    else:
        return kind is not float
    for item in values:
        kind = type(item)
        if kind is float or ((kind is dict or kind is list) and not _exact(item)):
            return False
    return True


@dataclass(frozen=True)
class Body:
    """One push body: its raw messages, and when it was received (None: not known)."""

    messages: list[object]
    received_at: datetime | None


def read_line(text: str, received_at: datetime | None = None) -> Body | None:
    """A feed line as a push body or a received body (see `read_body`), or None for a
    ledger command line: an object with a `command`, or any object without `tag` or
    `body`.  The line is parsed once (parsing it twice, to tell and then to read, was a
    tenth of a feed's CPU)."""
    if not text.startswith("{"):
        return read_body(text, received_at)
    try:
        found = load(text, "line", RECEIVED_DEPTH)
    except CommandRefused:  # refused as a body, unless it names a command
        if '"command"' in text:
            return None
        return read_body(text, received_at)  # (raises, naming the body)
    if not (isinstance(found, dict) and "command" not in found
            and ("tag" in found or "body" in found)):
        return None
    return _as_body(found, received_at, kept=True)


def read_body(text: str, received_at: datetime | None = None, *, kept: bool = True
              ) -> Body:
    """A feed line as a push body (`received_at`: the receive time of a bare body, e.g.
    `--received-at`), or INPUT for the line as a whole.  Not `kept`: a body as the
    platform posts it, never a received body."""
    return _as_body(load(text, "the body", RECEIVED_DEPTH if kept else MAX_DEPTH),
                    received_at, kept)


def _as_body(found: Any, received_at: datetime | None, kept: bool) -> Body:
    if kept and isinstance(found, dict) and "body" in found and "tag" not in found:
        if set(found) - {"received_at", "body"}:
            raise refuse(f"a received body has received_at and body only, not "
                          f"{sorted(set(found) - {'received_at', 'body'})[0]!r}")
        received_at = iso_time(found.get("received_at"), "field 'received_at'")
        found = found["body"]
    if isinstance(found, dict) and (kept or "tag" in found):
        found = [found]
    if not isinstance(found, list):
        raise refuse("a push body is a JSON array of messages")
    return Body(found, received_at)


def iso_time(value: object, where: str) -> datetime:
    """An ISO-8601 time with an offset."""
    if not isinstance(value, str):
        raise refuse(f"{where}: expected an ISO-8601 time with an offset, got "
                      f"{_shown(value)}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.utcoffset() is None:
        raise refuse(f"{where}: expected an ISO-8601 time with an offset, e.g. "
                      f"2026-03-01T10:00:00+08:00, got {_shown(value)}")
    if not 2000 <= at.year < 2100:
        raise refuse(f"{where}: {_shown(value)} is not a date between 2000 and 2100")
    return at.astimezone(ZONE)


def time_of(value: object, where: str) -> datetime:
    """A time as a push gives it: Unix seconds (a number or a numeric string) or an
    ISO-8601 string with an offset; an instant, in Asia/Shanghai."""
    if isinstance(value, str) and not value.strip().isdecimal():
        return iso_time(value.strip(), where)
    seconds = whole(value, where)
    if not EARLIEST <= seconds < LATEST:
        raise refuse(f"{where}: {seconds} Unix seconds is not a date between 2000 and 2100")
    return datetime.fromtimestamp(seconds, ZONE)


def whole(value: object, where: str) -> int:
    """A whole number given as a JSON number or a string of ASCII digits."""
    if isinstance(value, bool):
        raise refuse(f"{where}: expected a whole number, got {_shown(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value.adjusted() < MAX_DIGITS \
            and value == value.to_integral():
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text.removeprefix("-")
        if digits.isascii() and digits.isdecimal() and len(digits) <= MAX_DIGITS:
            return int(text)
    raise refuse(f"{where}: expected a whole number, got {_shown(value)}")


#: What an id given as text may hold (a character at a time in Python cost a feed 5 %).
_ID = re.compile(r"[A-Za-z0-9_.:-]+")


def identifier(value: object, where: str) -> str:
    """A platform id (`p_id`, `s_id`, `aftersale_id`, `shop_id`, `msg_id`), read exactly:
    a JSON number (never through a float) or a string of letters, digits, `_.:-`."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 64 and _ID.fullmatch(text):
            return text
    raise refuse(f"{where}: expected an id (digits, or letters, digits and _.:-, up to "
                  f"64), got {_shown(value)}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
