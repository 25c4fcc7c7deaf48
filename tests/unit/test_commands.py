"""The command file's lines: strict pydantic validation with messages naming the field."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aftersales import CommandRefused, parse_command
from aftersales.application.commands import Command, PlaceOrder, RequestReturn

AT = "2026-03-01T10:00:00+08:00"


def refusal(line: str | bytes) -> str:
    with pytest.raises(CommandRefused) as info:
        parse_command(line)
    assert info.value.code == "INPUT"
    return info.value.reason


def test_every_example_line_of_the_spec_parses() -> None:
    lines = [
        {"command": "place_order", "order_id": "D1", "at": AT, "payment": "online",
         "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900, "postage": 800},
        {"command": "pay", "order_id": "D1", "at": AT},
        {"command": "confirm_order", "order_id": "D2", "at": AT},
        {"command": "ship", "order_id": "D1", "at": AT, "carrier": "SF", "tracking_no": "SF123"},
        {"command": "deliver", "order_id": "D1", "at": AT},
        {"command": "cancel", "order_id": "D1", "at": AT, "by": "platform", "reason": "x"},
        {"command": "request_return", "order_id": "D1", "at": AT, "amount": 9900, "reason": "x"},
        {"command": "approve_return", "order_id": "D1", "at": AT},
        {"command": "reject_return", "order_id": "D1", "at": AT, "reason": "used"},
        {"command": "withdraw_return", "order_id": "D1", "at": AT},
        {"command": "submit_tracking", "order_id": "D1", "at": AT, "carrier": "YTO",
         "tracking_no": "YT9"},
        {"command": "confirm_receipt", "order_id": "D1", "at": AT},
        {"command": "upload_refund_voucher", "order_id": "D2", "at": AT, "voucher_ref": "V-1",
         "amount": 5000},
        {"command": "tick", "at": AT},
    ]
    for line in lines:
        assert parse_command(json.dumps(line)).command == line["command"]


def line(**fields: object) -> str:
    return json.dumps({"command": "pay", "order_id": "D1", "at": AT, **fields})


def without(key: str, **fields: object) -> str:
    content = json.loads(line(**fields))
    del content[key]
    return json.dumps(content)


@pytest.mark.parametrize("line,expected", [
    ("not json", "not a JSON object"),
    ("[1, 2]", "must be one JSON object, not an array"),
    ("17", "must be a JSON object"),
    (without("command"), "field 'command': missing"),
    (line(command="refund"), "unknown command 'refund'"),
    (without("at"), "field 'at': required"),
    (line(at="2026-03-01T10:00:00"), "needs an offset"),
    (line(at=1772330400), "field 'at'"),
    (line(extra=1), "field 'extra': unknown field"),
    (line(order_id=17), "field 'order_id'"),
    (line(order_id="D 1; rm -rf"), "field 'order_id'"),
    (line(command="request_return", amount=0), "field 'amount': Input should be greater than 0"),
    (line(command="request_return", amount=-5), "field 'amount'"),
    (line(command="request_return", amount="5"),
     "field 'amount': Input should be a valid integer"),
    (line(command="upload_refund_voucher", voucher_ref="V"), "field 'amount': required"),
    (line(command="cancel", by="system"), "field 'by'"),
    (line(command="reject_return"), "field 'reason'"),
    (line(at="1772330400"), "field 'at': expected an ISO-8601 timestamp with an offset"),
    (line(at="2026-13-01T10:00:00Z"), "field 'at': expected an ISO-8601 timestamp"),
    (line(at="9999-12-31T10:00:00+00:00"), "field 'at': business time 9999-12-31T10:00:00"
     "+00:00 is out of range: it must be from 1970 to 2199"),
    (line(at="0001-01-01T00:00:00+08:00"), "is out of range: it must be from 1970"),
    (line(at="2026-03-02T10:00:00.0000009+08:00"),
     "field 'at': more than six fractional digits (0000009): times are exact to the "
     "microsecond"),
    (line(at="2026-03-02T10:00:00,1234567+08:00"), "more than six fractional digits"),
])
def test_INPUT_refusals_name_the_field(line: str, expected: str) -> None:
    assert expected in refusal(line)


def test_INPUT_invalid_utf8_is_refused() -> None:
    assert "not a JSON object" in refusal(b'{"command": "pay", "order_id": "D\xff"}')


def test_command_id_is_derived_from_content_with_at_as_an_instant() -> None:
    a = parse_command(json.dumps({"command": "pay", "order_id": "D1", "at": AT}))
    b = parse_command(json.dumps({"command": "pay", "order_id": "D1",
                                  "at": "2026-03-01T02:00:00Z"}))
    c = parse_command(json.dumps({"command": "pay", "order_id": "D2", "at": AT}))
    assert a.identity() == b.identity()
    assert a.identity()[0] != c.identity()[0]


def test_defaults_are_part_of_the_content() -> None:
    explicit = PlaceOrder(order_id="D1", at=parse_command(
        json.dumps({"command": "tick", "at": AT})).at, payment="cod", merchant_id="M",
        user_id="U", goods_amount=1, postage=0, currency="CNY")
    implicit = PlaceOrder.model_validate_json(json.dumps(
        {"order_id": "D1", "at": AT, "payment": "cod", "merchant_id": "M", "user_id": "U",
         "goods_amount": 1}))
    assert explicit.identity() == implicit.identity()
    assert RequestReturn.model_fields["amount"].default is None


def canonical_digest(command: object) -> str:
    """The command id's digest as first defined: `json.dumps` of the model's JSON dump
    (without the optional fields added later while they are at their default)."""
    assert isinstance(command, Command)
    added = {name for name in command._added
             if getattr(command, name) == type(command).model_fields[name].default}
    content = command.model_dump(mode="json", exclude={"command_id", *added})
    content["at"] = command.at.astimezone(UTC).isoformat()
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


@pytest.mark.parametrize("fields", [
    {"command": "place_order", "order_id": "D1", "at": AT, "payment": "cod",
     "merchant_id": "M", "user_id": "U", "goods_amount": 1},
    {"command": "cancel", "order_id": "D1", "at": AT, "by": "platform", "reason": "质量问题"},
    {"command": "request_return", "order_id": "D1", "at": AT, "reason": "x"},
    {"command": "upload_refund_voucher", "order_id": "D1", "at": AT, "voucher_ref": "V",
     "amount": 5, "command_id": "c-1"},
    {"command": "tick", "at": "2026-03-01T02:00:00.000123Z"},
])
def test_identity_is_the_digest_of_the_models_json_dump(fields: dict[str, object]) -> None:
    command = parse_command(json.dumps(fields))
    digest = canonical_digest(command)
    assert command.identity() == (command.command_id or f"sha256:{digest[:40]}", digest)


@given(reason=st.text(max_size=40), at=st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)),
                               timezone(timedelta(hours=-3, minutes=-30))])))
def test_identity_of_any_text_and_time_is_that_digest(reason: str, at: datetime) -> None:
    command = RequestReturn(order_id="D1", at=at, reason=reason)
    assert command.identity()[1] == canonical_digest(command)


@pytest.mark.parametrize("fields,added", [
    ({"command": "request_return", "order_id": "D1", "at": AT, "reason": "x"},
     {"case_ref": "7130036489474212096"}),
    ({"command": "request_refund", "order_id": "D1", "at": AT, "amount": 5}, {"case_ref": "R"}),
    ({"command": "request_exchange", "order_id": "D1", "at": AT}, {"case_ref": "R"}),
    ({"command": "reconcile", "order_id": "D1", "at": AT, "source": "douyin", "ref": "m1",
      "fact": "approved", "step_at": AT}, {"case": 2, "tolerance": 600}),
])
def test_a_field_added_later_keeps_the_ids_of_lines_written_before_it(
    fields: dict[str, object], added: dict[str, object],
) -> None:
    """A line without the new optional fields (or with them at their default) is the
    command it was: its derived id is the digest of its content as first defined."""
    before = parse_command(json.dumps(fields))
    content = before.model_dump(mode="json", exclude={"command_id", *added})
    content["at"] = before.at.astimezone(UTC).isoformat()
    if "step_at" in content:
        content["step_at"] = before.step_at.astimezone(UTC).isoformat()  # type: ignore[union-attr]
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()
    assert before.identity() == (f"sha256:{digest[:40]}", digest)
    defaults = {k: type(before).model_fields[k].default for k in added}
    assert parse_command(json.dumps({**fields, **defaults})).identity() == before.identity()
    assert parse_command(json.dumps({**fields, **added})).identity() != before.identity()


def test_the_feed_commands_parse() -> None:
    lines = [
        {"command": "submit_tracking", "order_id": "D1", "at": AT},
        {"command": "ship_replacement", "order_id": "D1", "at": AT, "carrier": "SF"},
        {"command": "request_refund", "order_id": "D1", "at": AT,
         "case_ref": "7130036489474212096"},
        {"command": "amend_request", "order_id": "D1", "at": AT, "amount": 5000,
         "reason": "one only"},
        {"command": "withdraw_appeal", "order_id": "D1", "at": AT},
        {"command": "arbitrate", "order_id": "D1", "at": AT, "outcome": "user",
         "blame": "unknown"},
        {"command": "record_blame", "order_id": "D1", "at": AT, "blame": "merchant"},
        {"command": "record_blame", "order_id": "D1", "at": AT, "blame": "both", "case": 2},
        {"command": "reconcile", "order_id": "D1", "at": AT, "source": "douyin", "ref": "m",
         "fact": "cancelled", "by": "platform", "step_at": AT, "tolerance": 600},
    ]
    for line in lines:
        assert parse_command(json.dumps(line)).command == line["command"]


@pytest.mark.parametrize("fields,expected", [
    ({"command": "amend_request"}, "field 'amount': required"),
    ({"command": "amend_request", "amount": 0}, "field 'amount'"),
    ({"command": "record_blame"}, "field 'blame': required"),
    ({"command": "record_blame", "blame": "unknown"}, "field 'blame'"),
    ({"command": "record_blame", "blame": "user", "case": 0}, "field 'case'"),
    ({"command": "reconcile", "source": "s", "ref": "r", "fact": "cancelled", "case": 1},
     "field 'case': the fact 'cancelled' is about the order"),
    ({"command": "reconcile", "source": "s", "ref": "r", "fact": "ruled", "tolerance": -1},
     "field 'tolerance'"),
    ({"command": "withdraw_appeal", "blame": "user"}, "field 'blame': unknown field"),
])
def test_INPUT_refusals_of_the_feed_commands_name_the_field(
    fields: dict[str, object], expected: str,
) -> None:
    assert refusal(json.dumps({"order_id": "D1", "at": AT, **fields})).startswith(expected)
