"""The generated Douyin feed (`gen --platform douyin`, `demo --platform douyin`): one
shop's few hundred orders with every tag, delivered out of order, some twice and a few
later than the window, whose platform disagrees with the rules now and then; it ingests
with nothing refused, and its discrepancies are of every kind it plants."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise

from aftersales import Ledger
from aftersales.devtools.douyin_feed import FeedPlan, generate
from aftersales.feeds.douyin import TAGS, parse_body
from aftersales.feeds.run import ingest_feed

PLAN = FeedPlan()


def test_the_feed_has_every_tag_out_of_order_and_twice() -> None:
    lines = list(generate(PLAN))
    assert lines == list(generate(PLAN))  # the same seed, the same lines
    bodies = [parse_body(x) for x in lines if x.startswith("[")]
    messages = [m for body in bodies for m in body]
    assert {m.tag for m in messages} == set(TAGS)
    ids = Counter(m.msg_id for m in messages)
    assert any(n == 2 for n in ids.values())  # delivered twice
    times = [m.at for m in messages]
    assert any(b < a for a, b in pairwise(times))  # out of order
    assert {json.loads(x)["merchant_id"] for x in lines
            if x.startswith("{") and "merchant_id" in x} == {"SHOP-7F3"}  # one shop
    assert 250 <= sum(1 for x in lines if '"place_order"' in x) <= 300


def test_the_feed_ingests_with_every_kind_of_discrepancy_it_plants() -> None:
    ledger = Ledger("memory:")
    said: list[str] = []
    report = ingest_feed(ledger, [x.encode() for x in generate(PLAN)],
                         lateness=PLAN.lateness, on_refused=said.append)
    assert report.refused == {} and report.duplicates > 0 and report.late > 0
    assert [x for x in said if "ArbitrateCancelled" not in x] == []  # 215: reported
    differed = Counter(e.kind for e in ledger.all_events()
                       if type(e).__name__ == "PlatformDiffered")
    assert {"time", "deadline", "amount"} <= set(differed)
    agreed = sum(1 for e in ledger.all_events() if type(e).__name__ == "PlatformAgreed")
    assert agreed > sum(differed.values())  # mostly, the platform follows the rules
