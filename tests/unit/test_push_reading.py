"""Reading push bodies as the platform sends them (SPEC section 10): both envelope
spellings, ids read exactly above 2^53, times in either form, and no body able to stop the
reader: every poison is refused INPUT naming its message, and its neighbours applied."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from aftersales import Ledger
from aftersales.errors import CommandRefused
from aftersales.feeds.douyin import Message, message
from aftersales.feeds.pushes import load, read_body
from aftersales.feeds.run import ingest_feed
from tests.douyin_bodies import BIG, HOUR, T0, body, paid, place, ts


def read(line: bytes | str) -> list[Message]:
    text = line.decode() if isinstance(line, bytes) else line
    found = read_body(text)
    return [m for n, raw in enumerate(found.messages)
            if isinstance(m := message(n, raw, found.received_at), Message)]


def test_both_spellings_read_as_the_same_message() -> None:
    [official] = read(body(paid("77", BIG, spelling="official")))
    [camel] = read(body(paid("77", BIG, spelling="camel")))
    assert official == camel
    assert (official.tag, official.msg_id, official.order_ids) == (101, "77", (str(BIG),))
    assert official.at == T0 + HOUR and official.key == "douyin:77"


@pytest.mark.parametrize("ids", [
    "[4835804142146756441]", '["4835804142146756441"]', "[9007199254740993]"])
def test_ids_above_2_53_are_read_exactly(ids: str) -> None:
    line = ('[{"tag":101,"msgId":7134483582361747744,"data":{"p_id":1,"s_ids":' + ids
            + ',"pay_time":1794002561,"pay_type":1}}]')
    [m] = read(line)
    assert m.order_ids == (json.loads(ids)[0].__str__(),)
    assert m.msg_id == "7134483582361747744"


def test_a_received_body_gives_its_receive_time_to_timeless_messages() -> None:
    line = json.dumps({"received_at": "2026-03-03T10:00:05+08:00", "body": [
        {"tag": "212", "msg_id": "1", "data": json.dumps({"s_id": BIG, "aftersale_id": 9})}]})
    [m] = read(line)
    assert m.at.isoformat() == "2026-03-03T10:00:05+08:00"


DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize("poison,said", [
    ({"tag": "\u00b2", "msg_id": "p", "data": {}}, "field 'tag': expected a whole number"),
    ({"tag": "٢٠٠", "msg_id": "p", "data": {}}, "field 'tag': expected a whole number"),
    ({"tag": 101, "msg_id": "p", "data": DEEP}, "field 'data': nested more than 32 deep"),
    ({"tag": 101, "msg_id": "p", "data": '{"s_ids":[1],"pay_time":' + "9" * 4301 + "}"},
     "field 'data': not JSON a push can hold"),
    ({"tag": 101, "msg_id": "p", "data": '{"s_ids":[1],"pay_time":NaN}'},
     "field 'pay_time': expected a whole number, got NaN"),
    ({"tag": 101, "msg_id": "p", "data": '{"s_ids":[NaN],"pay_time":1794002561}'},
     "field 's_ids': expected an id"),
    ({"tag": 101, "msg_id": "p", "data": '{"s_ids":[1],"pay_time":Infinity}'},
     "field 'pay_time': expected a whole number, got Infinity"),
    ({"tag": 101, "msg_id": "p", "data": {"s_ids": [1], "pay_time": float("nan")}},
     "field 'pay_time': expected a whole number, got NaN"),
    ({"tag": "NaN", "msg_id": "p", "data": {}}, "field 'tag': expected a whole number"),
    ({"tag": 101, "msg_id": "p", "data": '{"s_ids":[1],"pay_time":1e999}'},
     "field 'pay_time': expected a whole number"),
    ({"tag": 101, "msg_id": "p", "data": {"s_ids": [1], "pay_time": "soon"}},
     "field 'pay_time': expected an ISO-8601 time with an offset"),
    ({"tag": 101, "msg_id": "p", "data": {"s_ids": [1], "pay_time": "2026-03-01T10:00"}},
     "field 'pay_time': expected an ISO-8601 time with an offset"),
    ({"tag": 101, "msg_id": "p", "data": {"s_ids": [1.5], "pay_time": 1794002561}},
     "field 's_ids': expected an id"),
    ({"tag": 101, "msg_id": "p", "data": {"s_ids": 1, "pay_time": 1794002561}},
     "field 's_ids': expected a list"),
    ({"tag": 101, "msg_id": "p", "data": {"s_ids": [1], "pay_time": 12}},
     "is not a date between 2000 and 2100"),
    ({"tag": 101, "data": {}}, "field 'msg_id': required"),
    ({"tag": 101, "msg_id": {"a": 1}, "data": {}}, "field 'msg_id': expected an id"),
    ({"tag": 101, "msg_id": "p", "data": "{"}, "field 'data': not JSON"),
    ({"tag": 101, "msg_id": "p", "data": [1]}, "field 'data': expected an object"),
    ("not a message", "must be an object with tag, msg_id, data"),
    ({"tag": 101, "msgId": "p", "data": {"s_ids": [1], "pay_time": 1794002561,
                                         "note": "\ud800"}}, "holds a lone surrogate"),
    ({"tag": 101, "msg_id": "p", "data": '{"s_ids":[1],"pay_time":1794002561,'
                                         '"note":"\\udfff"}'}, "holds a lone surrogate"),
])
def test_a_poison_message_is_refused_input_naming_it_and_its_neighbours_apply(
        ledger: Ledger, poison: object, said: str) -> None:
    line = json.dumps([poison, json.loads(body(paid("good")))[0]]).encode()
    told: list[str] = []
    report = ingest_feed(ledger, [place(), line], on_refused=told.append)
    assert len(told) == 1 and told[0].startswith("line 2: INPUT: message 1")
    assert said in told[0]
    assert [type(e).__name__ for e in ledger.order_events(str(BIG))] == [
        "OrderPlaced", "PaymentReceived"]
    assert report.refused == {"INPUT": 1}


@pytest.mark.parametrize("line,said", [
    (b"[{", "not JSON"),
    (("[" * 5000 + "]" * 5000).encode(), "nested more than 32 deep"),
    (b'{"received_at": "yesterday", "body": []}', "field 'received_at'"),
    (b'{"received_at": "2026-03-03T10:00:05", "body": []}', "field 'received_at'"),
    (b'{"received_at": "2026-03-03T10:00:05+08:00", "body": [], "x": 1}', "not 'x'"),
    (b'"a"', "a push body is a JSON array of messages"),
    (b"[" + b"1" * 5000 + b"]", "not JSON a push can hold"),
])
def test_a_poison_body_is_refused_as_a_whole_and_the_next_line_applies(
        ledger: Ledger, line: bytes, said: str) -> None:
    told: list[str] = []
    ingest_feed(ledger, [place(), line, body(paid("good"))], on_refused=told.append)
    assert len(told) == 1 and told[0].startswith("line 2: INPUT: ") and said in told[0]
    assert len(list(ledger.order_events(str(BIG)))) == 2


def test_read_body_refuses_what_is_not_a_body() -> None:
    with pytest.raises(CommandRefused) as refused:
        read_body("3")
    assert refused.value.code == "INPUT"


def test_a_unix_time_as_a_numeric_string_is_read() -> None:
    [m] = read(json.dumps([{"tag": 101, "msgId": "1", "data": {
        "s_ids": [str(BIG)], "pay_type": 1, "pay_time": str(ts(T0))}}]))
    assert m.at == T0


def test_a_received_body_keeps_its_own_bytes_as_one_feed_line() -> None:
    from aftersales.feeds.webhook import received_line, spooled
    raw = (b'[{"tag":101,"msgId":"1","data":{"s_ids":[4835804142146756441],\n'
           b'  "pay_type":1,"pay_time":1794002561,"x":1e999}},\r\n'
           b' {"tag":"102","msg_id":"2","data":"{\\"s_ids\\":[1]}"}]')
    line = received_line(raw, T0)
    assert b"\n" not in line
    found = read_body(line.decode())
    assert found.received_at == T0 and len(found.messages) == 2
    first = message(0, found.messages[0], found.received_at)
    assert isinstance(first, Message) and first.order_ids == ("4835804142146756441",)
    kept = spooled(line)  # an earlier version's spool line read back
    assert kept is not None and kept[1] == T0 and b"4835804142146756441" in kept[0]
    assert spooled(line[:20]) is None


def test_a_body_nested_to_the_limit_is_read_bare_and_as_a_received_line() -> None:
    from aftersales.feeds.pushes import MAX_DEPTH
    from aftersales.feeds.webhook import received_line
    deep: object = 1
    for _ in range(MAX_DEPTH - 3):  # the body's array, the message, its data: 3 levels
        deep = [deep]
    raw = json.dumps([{"tag": 101, "msgId": "d", "data": {
        "s_ids": [1], "pay_type": 1, "pay_time": 1794002561, "x": deep}}]).encode()
    assert len(read(raw)) == 1
    assert len(read(received_line(raw, T0))) == 1


@pytest.mark.parametrize(("number", "value"), [
    ("18446744073709551615", 18446744073709551615),  # 2^64 - 1: the largest orjson keeps
    ("18446744073709551616", 18446744073709551616),  # 2^64: orjson reads it as a float
    ("-9223372036854775809", -9223372036854775809),  # below -2^63: as a float too
    ("99.90", Decimal("99.90")),  # a fraction, kept exact
    ("1e3", Decimal("1E+3")),  # an exponent
])
def test_every_number_of_a_body_is_read_exactly(number: str, value: object) -> None:
    found = load(f'[{{"tag":101,"data":{{"n":{number},"s_ids":[{BIG}]}}}}]', "the body")
    assert found[0]["data"]["n"] == value and type(found[0]["data"]["n"]) is type(value)
    assert found[0]["data"]["s_ids"] == [BIG]
