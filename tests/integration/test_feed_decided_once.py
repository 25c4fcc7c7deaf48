"""SPEC section 10, "each message is decided once": whatever the feed goes through (a
re-delivery, a file ingested again, a crash that loses the messages held in the window and
a restart from the first line or from the checkpoint, any arrival order within the
lateness window), the ledger ends as the uninterrupted, in-order run leaves it: the same
events, and the same outcome recorded for every message, refused and reported ones
included.  Reported messages are decided again only by `retry`."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftersales import Ledger
from aftersales.feeds.run import Feed, ingest_feed, retry
from tests.douyin_bodies import (
    BIG,
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    T0,
    aftersale,
    body,
    cancelled,
    completed,
    paid,
    place,
    shipped,
)

LATENESS = 2 * DAY
ORDERS = [BIG + n for n in range(7)]  # the scenario's sub-orders
CASES = [7130036489474212096 + n for n in range(7)]


def _life(n: int) -> list[tuple[datetime, Any, bool]]:
    """Order n's messages: (business time, message, timeless)."""
    o, c = ORDERS[n], CASES[n]
    ship = [(T0 + HOUR, paid(f"{n}01", o), False), (T0 + 2 * HOUR, shipped(f"{n}02", o), False),
            (T0 + DAY, completed(f"{n}03", o), False)]

    def a(tag: int, m: str, when: datetime, timeless: bool = False, **data: Any
          ) -> tuple[datetime, Any, bool]:
        return (when, aftersale(tag, f"{n}{m}", None if timeless else when, order=o, case=c,
                                **data), timeless)

    if n == 0:  # a return, refunded on receipt, and the platform's account of it
        return [*ship, a(200, "10", T0 + 2 * DAY, refund_amount=9900),
                a(202, "11", T0 + 2 * DAY + HOUR), a(203, "12", T0 + 3 * DAY),
                a(201, "13", T0 + 4 * DAY, op_role=2),
                a(206, "14", T0 + 4 * DAY + MINUTE, refund_amount=9900)]
    if n == 1:  # a refund the platform's timer approved at the deadline
        return [*ship, a(200, "10", T0 + 2 * DAY, kind=1, refund_amount=5000),
                a(201, "11", T0 + 4 * DAY + 30 * SECOND, kind=1, op_role=4),
                a(206, "12", T0 + 4 * DAY + 2 * HOUR, kind=1, refund_amount=5000)]
    if n == 2:  # a cod exchange: confirmed by TradePaid, ended by a success status
        return [(T0 + HOUR, paid(f"{n}01", o, pay_type=0), False), *ship[1:],
                a(200, "10", T0 + 2 * DAY, kind=3, refund_amount=0),
                a(202, "11", T0 + 2 * DAY + 2 * HOUR, kind=3),
                a(203, "12", T0 + 3 * DAY, kind=3), a(211, "13", T0 + 4 * DAY, kind=3),
                a(207, "14", T0 + 6 * DAY, kind=3, status=12)]
    if n == 3:  # a refused refund, appealed and ruled: timeless messages
        return [*ship, a(200, "10", T0 + 2 * DAY, kind=1, refund_amount=5000),
                a(204, "11", T0 + 2 * DAY + HOUR, kind=1, refuse_reason="used"),
                a(212, "12", T0 + 3 * DAY, True, kind=1),
                a(213, "15", T0 + 3 * DAY + HOUR, True, kind=1),  # ignored
                a(214, "13", T0 + 3 * DAY + 2 * HOUR, True, kind=1),
                a(216, "14", T0 + 4 * DAY, True, kind=1, arbitrate_conclusion=1)]
    if n == 4:  # never paid: the platform's cancellation is the ledger's C-ON-4
        late = T0 + 24 * HOUR + 40 * SECOND  # the platform's timer, 40 s after the ledger's
        return [(late, cancelled(f"{n}01", o, at=late), False)]
    if n == 5:  # the platform moves the answer deadline; the merchant answers in time
        return [*ship, a(200, "10", T0 + 2 * DAY, refund_amount=9900),
                a(209, "11", T0 + 2 * DAY + HOUR, True,
                  status_deadline=int((T0 + 6 * DAY).timestamp())),
                a(202, "12", T0 + 5 * DAY)]
    # n == 6: never placed in the ledger: reported, decided again only by retry
    return ship[:1]


def scenario(seed: int, duplicates: int = 3) -> list[bytes]:
    """The order export, then the bodies in an arrival order that keeps each message
    within the lateness window of its business time, some delivered twice."""
    rng = random.Random(seed)
    arrivals: list[tuple[datetime, bytes]] = []
    for n in range(len(ORDERS)):
        for when, msg, timeless in _life(n):
            arrive = when if timeless else when + rng.random() * (LATENESS - MINUTE)
            arrivals.append((arrive, body(msg, received_at=arrive)))
    for _ in range(duplicates):
        again = rng.choice(arrivals)
        arrivals.append((again[0] + rng.random() * 5 * DAY, again[1]))
    arrivals.sort(key=lambda x: x[0])
    export = [place(o, "cod" if n == 2 else "online") for n, o in enumerate(ORDERS[:6])]
    return export + [line for _, line in arrivals]


def keys(lines: list[bytes]) -> list[str]:
    import json
    found: set[str] = set()
    for line in lines:
        doc = json.loads(line)
        if isinstance(doc, dict) and "body" in doc:
            found.update(f"douyin:{m.get('msg_id', m.get('msgId'))}" for m in doc["body"])
    return sorted(found)


def ledger_state(ledger: Ledger, lines: list[bytes]) -> tuple[Any, ...]:
    """Every order's events (what each says, not when it was recorded) and every
    message's recorded outcome."""
    orders = []
    for o in ORDERS:
        orders.append([(type(e).__name__, e.at, e.actor, getattr(e, "case", None),
                        e.command_id, getattr(e, "kind", None))
                       for e in ledger.order_events(str(o))])
    outcomes = {k: (r.outcome, r.code) for k, r in
                ledger.message_outcomes(keys(lines)).items()}
    return tuple(map(tuple, orders)), tuple(sorted(outcomes.items()))


def run(url: str, lines: list[bytes], cut: int | None = None,
        from_checkpoint: bool = False) -> tuple[Any, ...]:
    """The feed applied; with `cut`, the process dies after adding that many lines (the
    messages held in its window are lost, nothing is drained) and a new one starts: from
    line 1 (a file ingested again) or from the checkpoint (the webhook's restart)."""
    ledger = Ledger(url)
    try:
        start = 1
        if cut is not None:
            crashed = Feed(ledger, LATENESS)
            for number, raw in enumerate(lines[:cut], start=1):
                crashed.add(number, raw)
            if from_checkpoint:
                held = crashed.first_held()
                start = cut + 1 if held is None else held
        feed = Feed(ledger, LATENESS)
        for number, raw in enumerate(lines[start - 1:], start=start):
            feed.add(number, raw)
        feed.drain()
        return ledger_state(ledger, lines)
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def straight() -> tuple[Any, ...]:
    """The in-order, uninterrupted run (every message in business-time order)."""
    return run("memory:", scenario(0, duplicates=0))


def test_the_scenario_takes_every_step_it_means(straight: tuple[Any, ...]) -> None:
    orders, outcomes = straight
    names = [[e[0] for e in order] for order in orders]
    assert names[1][-4:] == ["RefundAutoApproved", "PlatformRefunded", "PlatformAgreed",
                             "PlatformAgreed"]
    assert names[2][-3:] == ["ReceiptConfirmed", "ReplacementShipped", "ReplacementDelivered"]
    assert names[3][-4:] == ["Appealed", "EvidenceSubmitted", "ArbitrationRuled",
                             "PlatformRefunded"]
    assert names[4] == ["OrderPlaced", "OrderAutoCancelled", "PlatformAgreed"]
    assert names[5][-2:] == ["DeadlineSet", "MerchantApproved"]
    found = dict(outcomes)
    assert found["douyin:601"] == ("reported", "")
    assert {o for o, _ in found.values()} >= {"applied", "reconciled", "reported", "ignored"}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6))
def test_any_arrival_order_within_the_window_gives_the_same_ledger(
        straight: tuple[Any, ...], seed: int) -> None:
    assert run("memory:", scenario(seed)) == straight


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), cut=st.integers(0, 60), checkpoint=st.booleans())
def test_a_crash_at_any_point_then_a_restart_gives_the_same_ledger(
        straight: tuple[Any, ...], seed: int, cut: int, checkpoint: bool) -> None:
    lines = scenario(seed)
    assert run("memory:", lines, min(cut, len(lines)), checkpoint) == straight


@pytest.mark.parametrize("cut,checkpoint", [(17, False), (33, True)])
def test_a_crash_and_restart_on_a_durable_store(
        straight: tuple[Any, ...], db_url: str, cut: int, checkpoint: bool) -> None:
    assert run(db_url, scenario(cut), cut, checkpoint) == straight


def test_the_issues_minimal_rerun_refuses_the_late_message_again(ledger: Ledger) -> None:
    """Four command lines, pushes at +1 h, +2 h, +3 h, +5 h, and a receipt stamped +4 h
    that arrives after the +5 h one: with no lateness it is refused TIME, and a second run
    of the same file must not apply it as something else."""
    import json
    t = datetime.fromisoformat("2026-03-01T10:00:00+08:00")
    lines = [json.dumps({"command": c, "order_id": "RD-1", "at": (t + k * 10 * MINUTE)
                         .isoformat(), **f}).encode() for k, (c, f) in enumerate([
                             ("place_order", {"payment": "online", "merchant_id": "M1",
                                              "user_id": "U1", "goods_amount": 9900}),
                             ("pay", {}), ("ship", {"carrier": "SF", "tracking_no": "S1"}),
                             ("deliver", {})])]
    case = {"order": "RD-1", "case": 77}
    lines += [body(aftersale(200, "r1", t + HOUR, refund_amount=9900, **case)),
              body(aftersale(202, "r2", t + 2 * HOUR, **case)),
              body(aftersale(203, "r3", t + 3 * HOUR, **case)),
              body(aftersale(209, "r5", None, status_deadline=int((t + 9 * DAY).timestamp()),
                             **case), received_at=t + 5 * HOUR),
              body(aftersale(201, "r4", t + 4 * HOUR, op_role=2, **case))]
    first: list[str] = []
    ingest_feed(ledger, lines, lateness=timedelta(0), on_refused=first.append)
    before = [type(e).__name__ for e in ledger.order_events("RD-1")]
    second: list[str] = []
    report = ingest_feed(ledger, lines, lateness=timedelta(0), on_refused=second.append)
    assert [type(e).__name__ for e in ledger.order_events("RD-1")] == before
    assert before[-2:] == ["TrackingSubmitted", "DeadlineSet"]
    assert [x.split(": ")[1] for x in first] == ["TIME"]
    assert second == [] and report.duplicates == 5 + 4
    assert ledger.message_outcomes(["douyin:r4"])["douyin:r4"].code == "TIME"


def test_retry_decides_a_reported_message_again_once_its_order_is_placed(
        ledger: Ledger) -> None:
    orphan = body(paid("p9", ORDERS[6]))
    report = ingest_feed(ledger, [orphan])
    assert report.reported == 1 and ledger.get_order(str(ORDERS[6])) is None
    again = ingest_feed(ledger, [place(ORDERS[6]), orphan])  # the export, and a re-delivery
    assert again.duplicates == 1  # decided before: not decided again by a re-delivery
    assert [type(e).__name__ for e in ledger.order_events(str(ORDERS[6]))] == ["OrderPlaced"]
    retried = retry(ledger)
    assert (retried.messages, retried.applied) == (1, 1)
    assert [type(e).__name__ for e in ledger.order_events(str(ORDERS[6]))] == [
        "OrderPlaced", "PaymentReceived"]
    assert ledger.message_outcomes(["douyin:p9"])["douyin:p9"].outcome == "applied"
    assert retry(ledger).messages == 0  # nothing reported remains


def test_retry_reads_the_kept_message_as_it_came(ledger: Ledger) -> None:
    """A time given as 1794002561.0: read the first time, read the same on retry."""
    import json
    line = json.dumps([{"tag": 101, "msgId": "f1", "data": {
        "s_ids": [str(ORDERS[6])], "pay_type": 1, "pay_time": 1794002561.0}}]).encode()
    assert ingest_feed(ledger, [line]).reported == 1
    ingest_feed(ledger, [place(ORDERS[6], at=datetime.fromisoformat(
        "2026-11-06T10:00:00+08:00"))])
    retried = retry(ledger)
    assert (retried.applied, sum(retried.refused.values())) == (1, 0)
    assert list(ledger.order_events(str(ORDERS[6])))[-1].at.timestamp() == 1794002561


def test_retry_decides_only_the_sub_orders_a_message_was_reported_for(
        ledger: Ledger) -> None:
    """A cancellation of a parent of two sub-orders, one in the ledger and one not: the
    one in the ledger is cancelled at once; retry, once the other is placed, cancels that
    one and does not decide the first again."""
    both = body(cancelled("c1", ORDERS[0], ORDERS[6], at=T0 + HOUR))
    first = ingest_feed(ledger, [place(ORDERS[0]), both])
    assert first.reported == 1
    assert ledger.message_outcomes(["douyin:c1"])["douyin:c1"].order_ids == str(ORDERS[6])
    ingest_feed(ledger, [place(ORDERS[6])])
    said: list[str] = []
    retried = retry(ledger, on_refused=said.append)
    assert said == [] and retried.applied == 1
    for o in (ORDERS[0], ORDERS[6]):
        names = [type(e).__name__ for e in ledger.order_events(str(o))]
        assert names == ["OrderPlaced", "OrderCancelled"]
    assert ledger.message_outcomes(["douyin:c1"])["douyin:c1"].outcome == "applied"
