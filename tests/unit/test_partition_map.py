"""The partition map (which store holds which orders) and where `publish` sends each line:
by the shard function, for command lines and for Douyin bodies in the platform's real
shapes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from aftersales.errors import CommandRefused, StoreConfigError
from aftersales.feeds.publish import outgoing
from aftersales.storage.partition_map import PartitionMap, read_map
from aftersales.storage.reading import AS_RECORDED, Positions
from aftersales.storage.shard import SHARDS, shard_of
from tests import douyin_bodies as dy

#: Orders of shards 0, 3 and 5.
B1, B3, B5 = dy.BIG, dy.BIG + 2, dy.BIG + 4


def test_a_map_is_read_from_a_file_with_comments_or_from_the_urls_given(
        tmp_path: Path) -> None:
    listed = tmp_path / "partitions"
    listed.write_text("# the ledger's partitions\npostgresql://a@h1/p0\n\n"
                      "postgresql://a@h2/p1  # the second server\n")
    found = read_map(str(listed))
    assert found is not None and found.urls == ("postgresql://a@h1/p0",
                                                 "postgresql://a@h2/p1")
    given = read_map("sqlite:///p0.db, sqlite:///p1.db")
    assert given is not None and given.count == 2
    from_env = read_map(None, {"AFTERSALES_PARTITIONS": str(listed)})
    assert from_env == PartitionMap(found.urls, from_env.source)
    assert read_map(None, {}) is None


@pytest.mark.parametrize("urls,said", [
    ((), "1 to 16"),
    (tuple(f"sqlite:///p{k}.db" for k in range(17)), "1 to 16"),
    (("sqlite:///p.db", "sqlite:///p.db"), "name the same store"),
    (("memory:",), "durable store"),
    (("mysql://h/db",), "unknown store URL"),
])
def test_a_map_that_cannot_be_a_ledger_is_refused(urls: tuple[str, ...], said: str) -> None:
    with pytest.raises(StoreConfigError, match=said):
        PartitionMap(urls)


def test_an_unreadable_map_file_is_said(tmp_path: Path) -> None:
    with pytest.raises(StoreConfigError, match="cannot be read"):
        read_map(str(tmp_path / "missing"))


def test_an_order_is_in_partition_shard_mod_n_and_positions_stay_apart() -> None:
    four = PartitionMap(tuple(f"sqlite:///p{k}.db" for k in range(4)))
    for order in ("D1", str(B1), str(B3), str(B5)):
        assert four.partition_of(order) == shard_of(order) % 4
    assert [four.name(k) for k in range(4)] == [f"aftersales.{k}" for k in range(4)]
    one = PartitionMap(("sqlite:///p0.db",))
    assert one.name(0) == "aftersales" and one.positions(0) == AS_RECORDED
    assert one.positions(0).of(7) == 7
    rows = {four.positions(k).of(n) for k in range(4) for n in range(1, 100)}
    assert len(rows) == 4 * 99  # no two partitions' positions are the same
    assert four.positions(3) == Positions(SHARDS, 3)
    with pytest.raises(StoreConfigError, match="no partition 4"):
        four.partition(4)


def test_a_command_line_goes_to_its_orders_partition_under_its_command_id() -> None:
    line = dy.place(B3)
    [only] = outgoing(line, 4, douyin=False)
    assert only.partition == shard_of(str(B3)) % 4 == 3
    assert only.data == line
    from aftersales.application.commands import parse_command
    assert only.msg_id == parse_command(line.decode()).identity()[0]
    given = json.dumps({"command": "pay", "order_id": str(B5), "command_id": "pay-B5",
                        "at": "2026-03-01T11:00:00+08:00"}).encode()
    [paying] = outgoing(given, 2, douyin=False)
    assert paying.partition == 1 and paying.msg_id.startswith("pay-B5:")
    other = given.replace(b"11:00", b"12:00")  # the same id, other content: not a copy
    assert outgoing(other, 2, douyin=False)[0].msg_id != paying.msg_id


def test_a_tick_goes_to_every_partition() -> None:
    tick = b'{"command":"tick","at":"2026-03-02T00:00:00+08:00"}'
    found = outgoing(tick, 4, douyin=False)
    assert [o.partition for o in found] == [0, 1, 2, 3]
    assert len({o.msg_id for o in found}) == 4


@pytest.mark.parametrize("spelling", dy.SPELLINGS)
def test_a_body_goes_to_each_partition_its_messages_name(spelling: str) -> None:
    both = dy.body(dy.paid("7000000000000000001", B1, B3, spelling=spelling))
    found = outgoing(both, 4, douyin=True)
    assert [(o.partition, o.msg_id) for o in found] == [
        (0, "douyin:7000000000000000001@0"), (3, "douyin:7000000000000000001@3")]
    assert all(o.data == both for o in found)  # the body as received, ids exact
    [one] = outgoing(dy.body(dy.paid("7000000000000000002", B5, spelling=spelling)), 4,
                     douyin=True)
    assert (one.partition, one.msg_id) == (1, "douyin:7000000000000000002")
    assert str(B5).encode() in one.data


def test_a_bare_body_is_kept_with_its_receive_time() -> None:
    at = datetime.fromisoformat("2026-03-04T10:00:00+08:00")
    bare = dy.body(dy.aftersale(209, "7000000000000000008", None, order=B3,
                                status_deadline=dy.ts(at)))
    [kept] = outgoing(bare, 2, douyin=True, received_at=at)
    doc = json.loads(kept.data)
    assert doc["received_at"] == at.isoformat() and kept.partition == 1
    assert str(B3) in kept.data.decode()  # the body's own bytes, its ids exact
    [wrapped] = outgoing(dy.body(dy.aftersale(209, "7000000000000000008", None, order=B3),
                                 received_at=at), 2, douyin=True)
    assert json.loads(wrapped.data)["received_at"] == at.isoformat()


def test_what_names_no_order_goes_to_partition_0_to_be_said_there() -> None:
    unknown_tag = dy.body(dy.message(999, "7000000000000000010", shop_id=dy.SHOP))
    assert [o.partition for o in outgoing(unknown_tag, 4, douyin=True)] == [0]
    no_time = dy.body(dy.aftersale(209, "7000000000000000011", None, order=B3))
    assert [o.partition for o in outgoing(no_time, 4, douyin=True)] == [0]


def test_a_line_that_is_neither_is_refused_before_publishing() -> None:
    with pytest.raises(CommandRefused, match="INPUT") as refused:
        outgoing(b'{"command":"pay"}', 2, douyin=False)
    assert refused.value.code == "INPUT"
    assert outgoing(b"   \n", 2, douyin=True) == []


def test_a_partitions_anchor_names_its_partition_and_how_many_there_are() -> None:
    from aftersales.errors import AnchorLogError
    from aftersales.storage.anchor import Anchor, parse_anchors

    at = datetime.fromisoformat("2026-12-07T08:00:00+00:00")
    anchor = Anchor(7, bytes(32), at, (1, 4))
    [read] = parse_anchors([anchor.line()], "a file")
    assert read == anchor and json.loads(anchor.line())["of"] == 4
    assert parse_anchors([Anchor(7, bytes(32), at).line()], "a file")[0].part is None
    for part in ('"partition": 4, "of": 4', '"partition": 0', '"partition": 0, "of": 17',
                 '"partition": "0", "of": 2'):
        with pytest.raises(AnchorLogError, match="is not a partition"):
            parse_anchors(['{"position": 7, "head": "' + "0" * 64 + '", "at": '
                           '"2026-12-07T08:00:00Z", ' + part + "}"], "a file")
