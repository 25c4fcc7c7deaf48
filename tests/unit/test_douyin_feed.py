"""The generated Douyin feed (`gen --platform douyin`, `demo --platform douyin`): one
shop's few hundred orders in the platform's real push shapes (SPEC section 10): an order
export of place_order lines, then received bodies with every tag in both spellings, ids
above 2^53, delivered out of order, some twice and a few later than the window.  It
ingests with nothing refused or reported, once (a second ingest changes nothing), and
reconciling it finds exactly the discrepancies it plants, by class."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from itertools import pairwise
from typing import Any

import pytest

from aftersales import Ledger
from aftersales.devtools.douyin_feed import (
    CLASSES,
    TIMELESS,
    UNKNOWN_TAG,
    FeedPlan,
    end_of,
    generate,
    planted,
)
from aftersales.domain.events import PlatformAgreed, PlatformDiffered
from aftersales.feeds.douyin import TAGS, Message, message
from aftersales.feeds.pushes import read_body
from aftersales.feeds.run import ingest_feed

PLAN = FeedPlan()
ORDER_TAGS = {t for t, spec in TAGS.items() if spec.orders}
TIME_FIELDS = {"create_time", "pay_time", "complete_time", "cancel_time", "apply_time",
               "agree_time", "return_time", "refuse_time", "success_time", "close_time",
               "modify_time", "update_time"}


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return list(generate(PLAN))


def _split(lines: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The order export's commands and the received bodies."""
    found = [json.loads(x) for x in lines]
    commands = [x for x in found if "command" in x]
    return commands, [x for x in found if "command" not in x]


def _data(raw: dict[str, Any]) -> dict[str, Any]:
    data = raw["data"]
    found: dict[str, Any] = json.loads(data) if isinstance(data, str) else data
    return found


def test_an_order_export_of_place_order_lines_then_received_bodies(
        lines: list[str]) -> None:
    assert lines == list(generate(PLAN))  # the same seed, the same lines
    commands, bodies = _split(lines)
    assert lines[:len(commands)] == [json.dumps(c, ensure_ascii=False, separators=(",", ":"))
                                     for c in commands]  # the export comes first
    assert {c["command"] for c in commands} == {"place_order"}  # cod: TradePaid pay_type 0
    assert PLAN.orders <= len(commands) <= PLAN.orders * 2
    assert {c["merchant_id"] for c in commands} == {"4463798"}  # one shop
    assert {c["payment"] for c in commands} == {"online", "cod"}
    for body in bodies:
        assert set(body) == {"received_at", "body"} and body["body"]
        received = datetime.fromisoformat(body["received_at"])
        assert body["received_at"].endswith("+08:00") and received.microsecond == 0
    assert any(len(b["body"]) > 1 for b in bodies)


def test_every_tag_in_both_spellings_with_exact_ids(lines: list[str]) -> None:
    commands, bodies = _split(lines)
    placed = {c["order_id"] for c in commands}
    raws = [m for b in bodies for m in b["body"]]
    tags = Counter(int(m["tag"]) for m in raws)
    assert set(TAGS) <= set(tags)
    assert {217, 218, UNKNOWN_TAG} <= set(tags) and UNKNOWN_TAG not in TAGS
    official = [m for m in raws if isinstance(m["tag"], str)]
    other = [m for m in raws if isinstance(m["tag"], int)]
    assert official and other
    assert all(set(m) == {"tag", "msg_id", "data"} and isinstance(m["data"], str)
               for m in official)
    assert all(set(m) == {"tag", "msgId", "data"} and isinstance(m["data"], dict)
               for m in other)
    ids = [m.get("msg_id", m.get("msgId")) for m in raws]
    assert all(isinstance(x, str) and len(x) == 19 and x.isdecimal() for x in ids)
    kinds_of_id: set[type] = set()
    for raw in raws:
        data = _data(raw)
        for name in ("p_id", "s_id", "shop_id", "aftersale_id"):
            if name in data:
                kinds_of_id.add(type(data[name]))
        assert int(data["p_id"]) > 2**53 and len(str(data["p_id"])) == 19
    assert kinds_of_id == {int, str}  # JSON numbers and numeric strings
    # read as the ledger reads them: exactly, never through a float
    for body in bodies:
        timeless = [int(x["tag"]) in TIMELESS for x in body["body"]]
        for n, raw in enumerate(read_body(json.dumps(body)).messages):
            m = message(n, raw, datetime.fromisoformat(body["received_at"])
                        if timeless[n] else None)  # the others carry their own time
            if isinstance(m, Message):
                assert set(m.order_ids) <= placed and m.order_ids


def test_order_tags_carry_s_ids_and_after_sale_tags_their_case(lines: list[str]) -> None:
    _, bodies = _split(lines)
    seen_two = partly = 0
    for raw in (m for b in bodies for m in b["body"]):
        tag, data = int(raw["tag"]), _data(raw)
        if tag in ORDER_TAGS:
            assert "s_id" not in data and isinstance(data["s_ids"], list)
            assert {"p_id", "shop_id", "order_status", "order_type", "biz"} <= set(data)
            seen_two += len(data["s_ids"]) == 2
            partly += tag == 108 and len(data["s_ids"]) == 1
            assert isinstance(data[TAGS[tag].time[0]], int)  # Unix seconds
        if tag == 101:
            assert data["pay_type"] in (0, 1, 2) and data["pay_amount"] > 0
        if tag in (102, 108):
            assert set(data["logistics_msg"]) == {"express_company_id", "logistics_code"}
        if tag == 106:
            assert "cancel_reason" in data
        if tag >= 200 and tag != UNKNOWN_TAG:
            assert "s_ids" not in data
            assert {"p_id", "s_id", "shop_id", "aftersale_id", "aftersale_status",
                    "aftersale_type", "refund_amount", "refund_post_amount",
                    "reason_code"} <= set(data)
        if tag == 203:
            assert "logistics_msg" not in data and "logistics_code" not in data
        if tag == 201:
            assert data["op_role"] in (1, 2, 4)
        if tag == 200 and data["aftersale_type"] == 3:
            assert data["refund_amount"] == 0
        if tag == 216:
            assert data["arbitrate_conclusion"] in (1, 2, 3) and "arbitrate_blame" not in data
        if tag in range(212, 217):
            assert isinstance(data["arbitrate_id"], str)
        if tag in TIMELESS:  # no time at all: the body's received_at is theirs
            assert not TIME_FIELDS & set(data)
        elif tag >= 200 and tag != UNKNOWN_TAG:
            update = datetime.fromisoformat(data["update_time"])
            assert data["update_time"].endswith("+08:00")
            if (own := TAGS[tag].time[0]) != "update_time":
                assert data[own] == int(update.timestamp())
    assert seen_two and partly


def test_out_of_order_twice_and_timeless_messages_take_the_receive_time(
        lines: list[str]) -> None:
    _, bodies = _split(lines)
    messages: list[Message] = []
    for body in bodies:
        received = datetime.fromisoformat(body["received_at"])
        for n, raw in enumerate(read_body(json.dumps(body)).messages):
            m = message(n, raw, received)
            if not isinstance(m, Message):
                continue
            messages.append(m)
            if m.tag in TIMELESS:
                assert m.at == received
            else:  # a few seconds or more after its time, never before it
                assert m.at < received
    assert any(b.at < a.at for a, b in pairwise(messages))  # out of order
    assert any(n == 2 for n in Counter(m.msg_id for m in messages).values())  # twice
    assert max(m.at for m in messages) < end_of(PLAN)


def test_the_planted_discrepancies_are_of_every_class() -> None:
    found = planted(PLAN)
    assert set(found) == set(CLASSES) and all(found[k] >= 2 for k in CLASSES)
    assert planted(PLAN) == found and planted(FeedPlan(seed=8)) != found


def test_it_ingests_once_and_finds_what_it_plants(ledger: Ledger,
                                                  lines: list[str]) -> None:
    """The whole feed on memory; a smaller one (80 orders, the same seed) on the durable
    stores, whose share of the work is recording each message's outcome once."""
    plan = PLAN if ledger.url.startswith("memory") else FeedPlan(orders=80)
    feed = [x.encode() for x in (lines if plan == PLAN else generate(plan))]
    said: list[str] = []
    report = ingest_feed(ledger, feed, lateness=plan.lateness, on_refused=said.append)
    assert said == [] and report.refused == {} and report.reported == 0
    # later than the window shows only where other orders' messages came meanwhile: the
    # whole feed has them, the smaller one need not
    assert report.duplicates > 0 and (report.late > 0 or plan != PLAN)
    events = list(ledger.all_events())
    differed = Counter(e.kind for e in events if isinstance(e, PlatformDiffered))
    assert differed == planted(plan)  # every planted discrepancy, of its class; no other
    assert set(differed) == set(CLASSES)
    agreed = sum(1 for e in events if isinstance(e, PlatformAgreed))
    assert agreed > sum(differed.values())  # mostly, the platform follows the rules

    again = ingest_feed(ledger, feed, lateness=plan.lateness, on_refused=said.append)
    assert said == [] and again.events == 0 and again.applied == 0
    unread = again.by_tag["217"] + again.by_tag["218"] + again.by_tag[str(UNKNOWN_TAG)]
    assert again.ignored == unread  # tags the ledger does not read: not recorded
    assert again.duplicates == again.messages - unread + again.commands  # decided before
    assert len(list(ledger.all_events())) == len(events)
