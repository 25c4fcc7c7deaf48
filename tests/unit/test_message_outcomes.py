"""Each platform message is decided once (SPEC section 10): its outcome is recorded with its
key in the transaction that decides it, and a message found recorded is not decided again
(`Ledger.execute_message`, the `ledger_messages` table of every store)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError
from sqlalchemy.engine import make_url

from aftersales import CommandRefused, Ledger
from aftersales.application import commands as cmd
from aftersales.application.group_commit import MessageOutcome
from aftersales.settings import Settings
from aftersales.storage.port import MessageRow, sidecar_kwargs
from tests.conftest import _conninfo
from tests.faults import StoreLock
from tests.scenario import HOUR, T0

KEY = "douyin:7134483582361747744"


def place(order_id: str) -> cmd.PlaceOrder:
    return cmd.PlaceOrder(order_id=order_id, at=T0, payment="online", merchant_id="M",
                          user_id="U", goods_amount=100)


def pay(order_id: str, hours: int = 1) -> cmd.Pay:
    return cmd.Pay(order_id=order_id, at=T0 + hours * HOUR)


def ship(order_id: str, hours: int = 2) -> cmd.Ship:
    return cmd.Ship(order_id=order_id, at=T0 + hours * HOUR, carrier="SF", tracking_no="1")


def judged(key: str, order_ids: str = "", tag: int = 101,
           calls: list[list[object]] | None = None) -> Callable[[list[object]], MessageRow]:
    """The outcome of a message as a feed would judge it from its commands' results."""

    def outcome(results: list[object]) -> MessageRow:
        if calls is not None:
            calls.append(results)
        refused = [r for r in results if isinstance(r, CommandRefused)]
        if refused:
            first = refused[0]
            if first.code == "UNKNOWN-ORDER":  # kept as read, to be decided again
                return MessageRow(key, "reported", "", f"missing order: {first.reason}", tag,
                                  order_ids, message=f'{{"tag":{tag},"s_ids":"{order_ids}"}}')
            return MessageRow(key, "refused", first.code, first.reason, tag, order_ids)
        return MessageRow(key, "applied", "", "", tag, order_ids)

    return outcome


def events(ledger: Ledger) -> int:
    return ledger.recorder.max_notification_id() or 0


def codes(results: list[object] | None) -> list[str]:
    assert results is not None
    return [r.code if isinstance(r, CommandRefused) else
            "duplicate" if getattr(r, "duplicate", False) else "applied" for r in results]


def test_a_message_records_its_commands_and_its_row_in_one_decision(ledger: Ledger) -> None:
    done = ledger.execute_message([place("A"), pay("A")], KEY, judged(KEY, "A"))
    assert codes(done.results) == ["applied", "applied"]
    assert done.row == MessageRow(KEY, "applied", "", "", 101, "A")
    assert ledger.message_outcomes([KEY, "douyin:1"]) == {KEY: done.row}
    order = ledger.get_order("A")
    assert order is not None and order.status == "paid" and order.version == 2
    assert {place("A").identity()[0], pay("A").identity()[0]} <= ledger.index.command_ids()


def test_a_message_decided_before_is_not_decided_again(ledger: Ledger) -> None:
    """A re-delivered message (or a file ingested again) finds its row: nothing is decided,
    even where its commands would now go another way, and the row found is returned."""
    first = ledger.execute_message([pay("B")], KEY, judged(KEY, "B"))
    assert first.row.outcome == "reported"  # B was never placed
    ledger.execute(place("B"))
    recorded = events(ledger)
    calls: list[list[object]] = []
    again = ledger.execute_message([pay("B")], KEY, judged(KEY, "B", calls=calls))
    assert again == MessageOutcome(None, first.row)
    assert calls == []  # not even judged
    assert events(ledger) == recorded
    order = ledger.get_order("B")
    assert order is not None and order.status == "awaiting_payment"


def test_a_message_whose_commands_are_all_refused_records_its_refusals_and_its_row(
    ledger: Ledger,
) -> None:
    ledger.execute(place("C"))
    recorded = events(ledger)
    done = ledger.execute_message([ship("C")], KEY, judged(KEY, "C", tag=102))
    assert codes(done.results) == ["FLOW"]
    assert (done.row.outcome, done.row.code, done.row.tag) == ("refused", "FLOW", 102)
    assert ledger.message_outcomes([KEY]) == {KEY: done.row}
    assert events(ledger) == recorded  # no event: the refusal and the row only
    ident = ship("C").identity()
    assert ledger.index.known_refusals([ident])[ident][0] == "FLOW"


def test_a_message_without_commands_records_its_row_alone(ledger: Ledger) -> None:
    def ignored(results: list[object]) -> MessageRow:
        assert results == []
        return MessageRow("douyin:9", "ignored", "", "tag 217 is not ruled", 217, "")

    done = ledger.execute_message([], "douyin:9", ignored)
    assert done == MessageOutcome([], MessageRow("douyin:9", "ignored", "",
                                                 "tag 217 is not ruled", 217, ""))
    assert ledger.message_outcomes(["douyin:9"]) == {"douyin:9": done.row}
    assert events(ledger) == 0


def test_a_message_is_decided_on_the_state_its_earlier_commands_left(ledger: Ledger) -> None:
    """One batch: each command on the state its predecessors left; a refused one leaves
    nothing, and the same command later in the message is refused again as it was."""
    done = ledger.execute_message([place("D"), ship("D"), pay("D"), ship("D")], KEY,
                                  judged(KEY, "D"))
    assert codes(done.results) == ["applied", "FLOW", "applied", "FLOW"]
    assert done.row.code == "FLOW"
    order = ledger.get_order("D")
    assert order is not None and order.status == "paid"


def test_replaces_decides_a_reported_message_again(ledger: Ledger) -> None:
    """Reported messages are decided again only on purpose, once what they lacked is
    there (`aftersales feed retry`): the new decision replaces the reported row."""
    reported = ledger.execute_message([pay("E")], KEY, judged(KEY, "E"))
    assert reported.row == MessageRow(KEY, "reported", "", "missing order: order E was never "
                                      "placed", 101, "E", '{"tag":101,"s_ids":"E"}')
    assert ledger.reported_messages("douyin:", 10) == [reported.row]
    ledger.execute(place("E"))
    assert ledger.execute_message([pay("E")], KEY, judged(KEY, "E")).results is None
    again = ledger.execute_message([pay("E")], KEY, judged(KEY, "E"), replaces=True)
    assert codes(again.results) == ["applied"]
    assert again.row == MessageRow(KEY, "applied", "", "", 101, "E")
    assert ledger.message_outcomes([KEY]) == {KEY: again.row}
    assert ledger.reported_messages("douyin:", 10) == []
    order = ledger.get_order("E")
    assert order is not None and order.status == "paid"


def test_replacing_a_message_that_is_not_reported_decides_nothing(ledger: Ledger) -> None:
    """Decided again meanwhile (by another retry): the row found stands."""
    done = ledger.execute_message([place("F")], KEY, judged(KEY, "F"))
    recorded = events(ledger)
    again = ledger.execute_message([pay("F")], KEY, judged(KEY, "F"), replaces=True)
    assert again == MessageOutcome(None, done.row)
    assert events(ledger) == recorded


def test_the_store_refuses_a_row_that_replaces_one_not_reported_or_repeats_a_key(
    ledger: Ledger,
) -> None:
    """The conflicts the write path retries on: a key recorded already, a replacement of a
    row that is not (or no longer) reported.  Nothing of the transaction is recorded."""
    ledger.execute_message([place("G")], KEY, judged(KEY, "G"))
    recorder = ledger.recorder
    stale = MessageRow(KEY, "applied", "", "", 101, "G", replaces=True)
    for rows in ([stale], [stale._replace(key="douyin:new")],
                 [MessageRow(KEY, "ignored", "", "", 0, "")],
                 [MessageRow("douyin:x", "ignored", "", "", 0, "")] * 2):
        with pytest.raises(IntegrityError):
            recorder.insert_events([], **sidecar_kwargs({}, [], [], rows))
    assert ledger.message_outcomes([KEY, "douyin:new", "douyin:x"]) == {
        KEY: MessageRow(KEY, "applied", "", "", 101, "G")}


def test_a_conflict_on_the_row_records_none_of_the_messages_events(ledger: Ledger) -> None:
    """Another writer decides the message while this one does (between its look-up and its
    transaction): this one's events, command ids and row are rolled back together, and
    the look-up done again returns the other's row."""
    theirs = MessageRow(KEY, "ignored", "", "decided elsewhere", 101, "")

    def outcome(results: list[object]) -> MessageRow:
        ledger.recorder.insert_events([], **sidecar_kwargs({}, [], [], [theirs]))
        return judged(KEY, "H")(results)

    done = ledger.execute_message([place("H"), pay("H")], KEY, outcome)
    assert done == MessageOutcome(None, theirs)
    assert ledger.get_order("H") is None
    assert events(ledger) == 0
    assert not ledger.index.command_ids()


def test_reported_messages_are_listed_by_prefix_in_key_order(ledger: Ledger) -> None:
    keys = ["douyin:3", "douyin:1", "douyin:2", "douyin;0", "douyim:9", "other:1", "douyin"]
    for key in keys:
        ledger.execute_message([], key, lambda r, k=key: MessageRow(  # type: ignore[misc]
            k, "reported", "", "missing", 100, ""))
    ledger.execute_message([], "douyin:15", lambda r: MessageRow(
        "douyin:15", "ignored", "", "", 217, ""))

    def listed(prefix: str, limit: int = 10, after: str = "") -> list[str]:
        return [m.key for m in ledger.reported_messages(prefix, limit, after)]

    assert listed("douyin:") == ["douyin:1", "douyin:2", "douyin:3"]
    assert listed("douyin:", 2) == ["douyin:1", "douyin:2"]
    assert listed("douyin:", 2, after="douyin:2") == ["douyin:3"]
    assert listed("douyin") == ["douyin", "douyin:1", "douyin:2", "douyin:3", "douyin;0"]
    assert listed("") == sorted(keys)
    assert all(m.outcome == "reported" and m.reason == "missing"
               for m in ledger.reported_messages("", 10))


def test_two_ledgers_deciding_the_same_message_at_once_record_one_decision(
    db_url: str,
) -> None:
    """Both decide the message before either records it (they meet at a barrier in the
    outcome): one decision is recorded, and both return it."""
    met = threading.Barrier(2, timeout=120)
    first, second = Ledger(db_url), Ledger(db_url)
    try:
        def decide(ledger: Ledger, name: str) -> MessageOutcome:
            def outcome(results: list[object]) -> MessageRow:
                met.wait()
                return MessageRow(KEY, "applied", "", f"decided by {name}", 101, "I")

            return ledger.execute_message([place("I"), pay("I")], KEY, outcome)

        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(decide, (first, second), ("first", "second"))
        assert sorted([a.results is None, b.results is None]) == [False, True]
        winner = a if a.results is not None else b
        assert codes(winner.results) == ["applied", "applied"]
        assert a.row == b.row == winner.row
        assert first.message_outcomes([KEY]) == {KEY: winner.row}
        order = first.get_order("I")
        assert order is not None and order.status == "paid" and order.version == 2
        assert events(first) == 2
    finally:
        first.close()
        second.close()


def test_a_store_failure_on_the_write_records_nothing_and_the_message_is_decided_later(
    db_url: str,
) -> None:
    """The store's write lock is taken by another connection once the message is decided
    and before it is recorded: the write fails (a store failure, not a conflict), nothing
    of the message is there, and deciding it again records it once."""
    ledger = Ledger(db_url, settings=Settings(lock_timeout=0.05))
    lock = StoreLock(db_url)
    try:
        def outcome(results: list[object]) -> MessageRow:
            lock.take()
            return judged(KEY, "J")(results)

        with pytest.raises(OperationalError):
            ledger.execute_message([place("J"), pay("J")], KEY, outcome)
        lock.release()
        assert ledger.message_outcomes([KEY]) == {}
        assert ledger.get_order("J") is None and events(ledger) == 0
        done = ledger.execute_message([place("J"), pay("J")], KEY, judged(KEY, "J"))
        assert codes(done.results) == ["applied", "applied"]
        assert ledger.message_outcomes([KEY]) == {KEY: done.row}
    finally:
        lock.release()
        ledger.close()


def test_a_store_written_before_the_messages_table_gets_it_when_opened(db_url: str) -> None:
    """No `db upgrade`: opening the store (creating what is missing) adds the table."""
    Ledger(db_url).close()
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            conn.execute("DROP TABLE ledger_messages")
    else:
        schema = make_url(db_url).query["schema"]
        with psycopg.connect(_conninfo(make_url(db_url).database or "")) as conn:
            conn.execute(f'DROP TABLE "{schema}".ledger_messages')
    ledger = Ledger(db_url)
    try:
        assert ledger.message_outcomes([KEY]) == {}
        done = ledger.execute_message([], KEY, lambda r: MessageRow(
            KEY, "reported", "", "missing", 100, ""))
        assert ledger.reported_messages("douyin:", 5) == [done.row]
    finally:
        ledger.close()
