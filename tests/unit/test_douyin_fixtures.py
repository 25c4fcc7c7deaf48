"""The push bodies of tests/fixtures/douyin, built from the open platform's SDKs and their
samples (tests/fixtures/douyin/SOURCES.md), not by this project's generator: every
message is read, in both spellings, ids exact, and ingested without one refused as
unreadable or one order it names unknown."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from aftersales import Ledger
from aftersales.feeds.douyin import Message, message
from aftersales.feeds.pushes import read_body
from aftersales.feeds.run import ingest_feed

HERE = Path(__file__).parent.parent / "fixtures" / "douyin"
LINES = (HERE / "sample_bodies.jsonl").read_bytes().splitlines()


def received_at() -> dict[int, datetime]:
    """The README's receive times of the lines with timeless messages."""
    table = re.findall(r"^\| (\d+) \| (\S+) \|$", (HERE / "README.md").read_text(), re.M)
    return {int(n): datetime.fromisoformat(at) for n, at in table}


def messages() -> list[tuple[int, Message]]:
    times = received_at()
    found = []
    for n, line in enumerate(LINES, start=1):
        body = read_body(line.decode(), times.get(n))
        for k, raw in enumerate(body.messages):
            m = message(k, raw, body.received_at)
            if isinstance(m, Message):
                found.append((n, m))
    return found


def test_every_fixture_message_is_read_in_both_spellings_with_exact_ids() -> None:
    read = messages()
    tags = Counter(m.tag for _, m in read)
    assert set(tags) >= {100, 101, 102, 103, 106, 108, 200, 201, 202, 203, 204, 205, 206,
                         207, 208, 209, 211, 212, 213, 214, 215, 216}
    spellings = {("msgId" in json.loads(LINES[n - 1])[0]) for n, _ in read}
    assert spellings == {True, False}
    big = [o for _, m in read for o in m.order_ids if int(o) > 2**53]
    assert big and all(o.encode() in b"".join(LINES) for o in big)


def test_the_fixture_feed_is_ingested_with_nothing_unreadable_or_unknown(
        ledger: Ledger) -> None:
    read = messages()
    cod = {o for _, m in read if m.tag == 101 and str(m.data.get("pay_type")) == "0"
           for o in m.order_ids}
    first: dict[str, datetime] = {}
    for _, m in read:
        for o in m.order_ids:
            first[o] = min(first.get(o, m.at), m.at)
    export = [json.dumps({"command": "place_order", "order_id": o,
                          "at": (at - timedelta(hours=1)).isoformat(),
                          "payment": "cod" if o in cod else "online",
                          "merchant_id": "SHOP", "user_id": "U", "goods_amount": 100_000,
                          "postage": 1_000}).encode() for o, at in sorted(first.items())]
    times = received_at()
    lines = [json.dumps({"received_at": times[n].isoformat(), "body": json.loads(line)}
                        ).encode() if n in times else line
             for n, line in enumerate(LINES, start=1)]
    said: list[str] = []
    report = ingest_feed(ledger, [*export, *lines], on_refused=said.append,
                         lateness=timedelta(days=60))
    assert said == [] and not report.refused and report.reported == 0
    assert report.messages == len(read) + report.by_tag["217"] + report.by_tag["218"]
    assert (report.applied, report.reconciled, report.ignored) == (110, 13, 19)
