"""Hostile command files: every line refused as INPUT with its line number, nothing stored,
no crash, and each line costs a bounded amount of work (lines are capped at 16 KiB)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftersales import CommandRefused, Ledger
from aftersales.ingest.serial import ingest
from tests.reliability.snapshot import run_cli

AT = "2026-03-01T10:00:00+08:00"
GOOD: dict[str, Any] = {"command": "place_order", "order_id": "D1", "at": AT,
                        "payment": "cod", "merchant_id": "M1", "user_id": "U1",
                        "goods_amount": 9900, "postage": 800}
NASTY_IDS = ["x'; DROP TABLE aftersales_events; --", "$(reboot)", "`id`", "a b", "a\nb",
             'x"y', "%s%n", "\u0000", "../../etc/passwd", "订单1", "", "D" * 65]


def encode(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.integers(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=20)


@st.composite
def hostile_lines(draw: st.DrawFn) -> bytes:
    line = encode(GOOD)
    kind = draw(st.sampled_from([
        "truncated", "utf8", "huge", "nested", "long", "metachar", "unknown", "type",
        "duplicate"]))
    if kind == "truncated":
        return line[: draw(st.integers(1, len(line) - 1))]
    if kind == "utf8":
        at = draw(st.integers(0, len(line)))
        return line[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])) \
            + line[at:]
    if kind == "huge":
        value = draw(st.one_of(st.integers(10**12 + 1, 10**80), st.integers(max_value=0),
                               st.just("1e400")))
        return line.replace(b"9900", str(value).encode(), 1)
    if kind == "nested":
        depth = draw(st.integers(1, 6000))
        return b'{"command": ' + b"[" * depth + b"]" * depth + line[1:].replace(
            b'"command": "place_order", ', b"", 1)
    if kind == "long":
        return encode({**GOOD, "user_id": "U" * draw(st.integers(65, 20_000))})
    if kind == "metachar":
        field = draw(st.sampled_from(["order_id", "merchant_id", "user_id"]))
        return encode({**GOOD, field: draw(st.sampled_from(NASTY_IDS))})
    if kind == "unknown":
        name = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in GOOD))
        return encode({**GOOD, name: draw(json_values)})
    if kind == "type":
        field = draw(st.sampled_from(["goods_amount", "postage", "at", "payment", "order_id"]))
        amount = field in ("goods_amount", "postage")
        value = draw(json_values.filter(
            lambda v: (not isinstance(v, int) or isinstance(v, bool)) if amount
            else not isinstance(v, str)))
        return encode({**GOOD, field: value})
    repeated = draw(st.sampled_from(list(GOOD)))
    return line[:-1] + f', "{repeated}": {json.dumps(GOOD[repeated])}}}'.encode()


@given(lines=st.lists(hostile_lines(), min_size=1, max_size=5))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_hostile_lines_are_refused_as_input_and_store_nothing(durable_ledger: Ledger,
                                                              lines: list[bytes]) -> None:
    refused: list[tuple[int, str]] = []

    def note(number: int, refusal: CommandRefused) -> None:
        refused.append((number, refusal.code))

    report = ingest(durable_ledger, lines, note)
    assert refused == [(n, "INPUT") for n in range(1, len(lines) + 1)]
    assert report.applied == 0
    assert durable_ledger.recorder.max_notification_id() in (None, 0)
    assert durable_ledger.index.command_ids() == set()


def test_the_command_line_refuses_a_hostile_file_line_by_line(tmp_path: Path,
                                                              db_url: str) -> None:
    hostile = [
        b'{"command": "place_order", "order_id": "D1"',  # truncated
        b'\xff\xfe{"command": "pay"}',  # invalid UTF-8
        encode({**GOOD, "goods_amount": 10**40}),
        b"[" * 9000 + b"]" * 9000,
        encode({**GOOD, "user_id": "U" * 100_000}),
        encode({**GOOD, "order_id": "x'; DROP TABLE aftersales_events; --"}),
        encode({**GOOD, "order_id": "$(touch /tmp/pwned)"}),
        encode({**GOOD, "coupon": "FREE"}),
        encode({**GOOD, "postage": "800"}),
        encode(GOOD)[:-1] + b', "order_id": "D2"}',
        encode(GOOD),  # and one good line, which is applied
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(hostile) + b"\n")
    out = run_cli("ingest", str(path), "--db", db_url, cwd=tmp_path)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert [x.split(":")[0] for x in lines] == [f"line {n}" for n in range(1, 11)]
    assert all(": INPUT: " in x for x in lines)
    assert "10 refused (INPUT 10)" in out.stdout and "1 applied" in out.stdout
    assert not Path("/tmp/pwned").exists()
