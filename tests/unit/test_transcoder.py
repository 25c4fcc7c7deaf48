"""The orjson transcoder writes the library's own format: the same bytes for every event the
ledger records, and each transcoder reads what the other wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoder,
    UUIDAsHex,
)
from hypothesis import given
from hypothesis import strategies as st

from aftersales import Ledger
from aftersales.storage.codec import FastJSONTranscoder
from tests.scenario import DAY, HOUR, Scenario


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY = registered(JSONTranscoder())
FAST = registered(FastJSONTranscoder())


def state(event: Any) -> dict[str, Any]:
    found = dict(vars(event))
    del found["originator_id"], found["originator_version"]
    return found


def test_every_event_of_a_full_story_is_written_byte_for_byte_as_the_library_does() -> None:
    ledger = Ledger("memory:")
    s = Scenario(ledger, "cod")
    s.do("confirm_order")
    s.do("ship", carrier="SF", tracking_no="SF1")
    s.do("deliver")
    s.do("request_return", amount=5000, reason="质量问题 \"quoted\" \\ \n\t")
    s.tick(3 * DAY)  # auto-approved: a violation
    s.do("submit_tracking", carrier="YTO", tracking_no="YT9")
    s.do("confirm_receipt")
    s.tick(3 * DAY)  # compensated, penalised
    s.do("upload_refund_voucher", voucher_ref="V-1", amount=5000, after=HOUR)
    events = list(ledger.order_events("D1"))
    assert {type(e).__name__ for e in events} >= {
        "OrderPlaced", "ReturnRequested", "ReturnAutoApproved", "TrackingSubmitted",
        "ReceiptConfirmed", "AdvanceCompensationPaid", "MerchantPenalized",
        "RefundVoucherUploaded"}
    for event in events:
        assert FAST.encode(state(event)) == LIBRARY.encode(state(event))
        assert FAST.decode(LIBRARY.encode(state(event))) == state(event)
    ledger.close()


def test_the_ledger_uses_it() -> None:
    ledger = Ledger("memory:")
    transcoder: Transcoder = ledger.mapper.transcoder
    assert isinstance(transcoder, FastJSONTranscoder)
    ledger.close()


zones = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
values = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.integers()
          | st.integers(2**64 - 2, 2**64 + 2) | st.floats(allow_nan=False) | st.text()
          | st.datetimes(timezones=zones))
documents = st.dictionaries(st.text(), st.recursive(
    values, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8), max_size=8)


@given(documents)
def test_each_reads_what_the_other_wrote(document: dict[str, Any]) -> None:
    assert FAST.decode(LIBRARY.encode(document)) == document
    assert LIBRARY.decode(FAST.encode(document)) == document
    assert FAST.decode(FAST.encode(document)) == document


offsets = st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                        max_value=timedelta(hours=23, minutes=59))
any_zone = st.none() | st.just(UTC) | offsets.map(timezone) | st.sampled_from(
    [ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")])


@given(st.dictionaries(st.text(max_size=3), st.datetimes(timezones=any_zone), max_size=4))
def test_datetimes_in_any_zone_are_written_as_isoformat_writes_them(
    document: dict[str, datetime],
) -> None:
    assert FAST.encode(document) == LIBRARY.encode(document)


def test_values_orjson_would_write_otherwise_take_the_librarys_path() -> None:
    document = {"id": UUID(int=7), "big": 10**30, "at": datetime(2026, 3, 1, tzinfo=UTC)}
    assert FAST.encode(document) == LIBRARY.encode(document)
    assert FAST.decode(FAST.encode(document)) == document
