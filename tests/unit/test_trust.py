"""Trust, on every store (issue 10): business time far ahead of the wall clock is refused
before anything is decided (FUTURE); an order whose stored history fails its chain is
refused (INTEGRITY) while the others go on; the chain finds every kind of change; store
failures are sorted into those that may pass and those that will not."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from eventsourcing.persistence import OperationalError, StoredEvent

from aftersales import CommandRefused, Ledger
from aftersales.application import commands as cmd
from aftersales.application.clock import FutureGuard
from aftersales.errors import ConflictError, IntegrityBroken, SettingsError, StoreUnavailable
from aftersales.settings import Settings
from aftersales.storage.chain import ZERO, Head, Row, check_history, digest, id_bytes
from aftersales.storage.memory import MemoryLedgerRecorder
from aftersales.storage.retry import Patience, may_pass
from tests.scenario import DAY, T0, Scenario

NOW = T0 + 2 * DAY  # the wall clock of these tests


def guarded(url: str) -> Ledger:
    return Ledger(url, guard=FutureGuard(timedelta(minutes=10), now=lambda: NOW))


def test_FUTURE_commands_and_sweeps_ahead_of_the_wall_clock_are_refused(store_url: str
                                                                       ) -> None:
    ledger = guarded(store_url)
    s = Scenario(ledger, "online")  # placed at T0: its payment deadline is T0 + 24h
    ahead = NOW + timedelta(minutes=11)
    with pytest.raises(CommandRefused) as refused:
        s.do("pay", at=ahead)
    assert refused.value.code == "FUTURE"
    assert "ahead of the wall clock" in refused.value.reason
    with pytest.raises(CommandRefused) as sweep:
        ledger.tick(ahead)
    assert sweep.value.code == "FUTURE"
    results = ledger.execute_batch([cmd.Tick(at=ahead), cmd.build(cmd.Pay, {
        "order_id": "D1", "at": ahead})])
    assert [getattr(r, "code", None) for r in results] == ["FUTURE", "FUTURE"]
    # Nothing was revealed: the payment deadline passed before NOW, but no line within
    # the margin asked; the order is still awaiting payment.
    assert s.order_status == "awaiting_payment"
    assert ledger.tick(NOW + timedelta(minutes=10)) == 1  # within the margin
    assert s.order_status == "cancelled"
    ledger.close()


def test_FUTURE_no_guard_for_replays_of_future_dated_data(store_url: str) -> None:
    ledger = Ledger(store_url)  # the Python API reads no clock unless given a guard
    Scenario(ledger, "online")
    assert ledger.tick(T0 + 3650 * DAY) == 1
    ledger.close()


def tamper(recorder: MemoryLedgerRecorder, position: int, state: bytes) -> None:
    """Change the stored bytes of the event at a position (an in-process store: its list)."""
    s = recorder._stored_events[position - 1]
    recorder._stored_events[position - 1] = StoredEvent(s.originator_id, s.originator_version,
                                                        s.topic, state)


def test_INTEGRITY_a_broken_order_is_refused_and_the_others_go_on() -> None:
    ledger = Ledger("memory:")
    Scenario(ledger, "online", order_id="D1").to_delivered()
    Scenario(ledger, "online", order_id="D2").to_delivered()
    recorder = ledger.recorder
    assert isinstance(recorder, MemoryLedgerRecorder)
    first = recorder._stored_events[1]  # D1's payment
    tamper(recorder, 2, first.state.replace(b'"actor":"user"', b'"actor":"platform"'))
    with pytest.raises(IntegrityBroken) as broken:
        ledger.get_order("D1")
    assert broken.value.broken.version == 2 and broken.value.order_id == "D1"
    later = T0 + 10 * DAY
    with pytest.raises(CommandRefused) as refused:
        ledger.request_return(order_id="D1", at=later, reason="x")
    assert refused.value.code == "INTEGRITY"
    assert "order D1: its recorded history is broken at version 2" in refused.value.reason
    ledger.request_return(order_id="D2", at=later, reason="x")
    assert ledger.tick(later + 3 * DAY) == 1  # D2's answer deadline; D1 is skipped
    assert set(ledger.broken) == {broken.value.originator_id}
    ledger.close()


def test_FUTURE_and_answers_by_command_id_alone_do_not_read_the_order() -> None:
    """One command on its own: a business time too far ahead is refused before the store
    is asked anything, and a duplicate or a remembered refusal is answered by its id
    alone, so neither reads (and reports) an order whose history is broken."""
    ledger = Ledger("memory:", guard=FutureGuard(timedelta(minutes=10), lambda: NOW))
    s = Scenario(ledger, "online", order_id="D1")
    paid = {"order_id": "D1", "at": T0 + DAY / 4, "command_id": "p1"}
    ledger.execute(cmd.build(cmd.Pay, paid))
    ship = {"order_id": "D1", "at": T0 + DAY / 2, "carrier": "SF", "tracking_no": "x",
            "command_id": "s1"}
    deliver = {"order_id": "D1", "at": T0 + DAY / 2, "command_id": "d1"}
    with pytest.raises(CommandRefused) as refused:
        ledger.execute(cmd.build(cmd.Deliver, deliver))  # not shipped yet
    assert refused.value.code == "FLOW"
    recorder = ledger.recorder
    assert isinstance(recorder, MemoryLedgerRecorder)
    first = recorder._stored_events[1]  # D1's payment
    tamper(recorder, 2, first.state.replace(b'"actor":"user"', b'"actor":"platform"'))
    with pytest.raises(CommandRefused) as future:
        ledger.execute(cmd.build(cmd.Ship, {**ship, "at": NOW + DAY}))
    assert future.value.code == "FUTURE"
    assert ledger.execute(cmd.build(cmd.Pay, paid)).duplicate
    with pytest.raises(CommandRefused) as again:
        ledger.execute(cmd.build(cmd.Deliver, deliver))
    assert again.value.code == refused.value.code  # as it was, saying it is remembered
    assert again.value.reason.startswith(f"{refused.value.reason} (remembered: command_id "
                                         "d1 was refused so when first decided")
    assert ledger.broken == {}
    with pytest.raises(CommandRefused) as broken:
        ledger.execute(cmd.build(cmd.Ship, ship))
    assert broken.value.code == "INTEGRITY"
    assert [b.order_id for b in ledger.broken.values()] == [s.order_id]
    ledger.close()


def rows_of(oid: object, states: list[bytes]) -> list[Row]:
    previous, rows = ZERO, []
    for n, state in enumerate(states, start=1):
        previous = digest(previous, id_bytes(oid), n, "t", state)  # type: ignore[arg-type]
        rows.append(Row(n, "t", state, previous))
    return rows


def test_the_chain_finds_a_change_a_removal_an_insertion_and_a_reordering() -> None:
    from uuid import uuid4

    oid = uuid4()
    rows = rows_of(oid, [b"a", b"b", b"c", b"d"])
    head = Head(4, rows[-1].digest or b"")
    assert check_history(oid, rows, head) is None
    changed = [*rows[:1], rows[1]._replace(state=b"B"), *rows[2:]]
    assert check_history(oid, changed, head).version == 2  # type: ignore[union-attr]
    assert check_history(oid, rows[:3], head).version == 4  # type: ignore[union-attr]
    assert check_history(oid, [rows[0], *rows[2:]], head).version == 2  # type: ignore
    swapped = [rows[0], rows[2]._replace(version=2), rows[1]._replace(version=3), rows[3]]
    assert check_history(oid, swapped, head).version == 2  # type: ignore[union-attr]
    assert check_history(oid, rows, None).reason == "the order's head record is missing"  # type: ignore[union-attr]
    assert check_history(oid, [], head).version == 1  # type: ignore[union-attr]
    other = uuid4()  # another order's events under this order's id
    assert check_history(other, rows, head).version == 1  # type: ignore[union-attr]


def test_store_failures_that_may_pass_and_those_that_will_not() -> None:
    def wrapped(cause: BaseException) -> OperationalError:
        try:
            raise OperationalError(str(cause)) from cause
        except OperationalError as e:
            return e

    assert may_pass(wrapped(sqlite3.OperationalError("database is locked")))
    assert may_pass(wrapped(sqlite3.OperationalError("database or disk is full")))
    assert not may_pass(wrapped(sqlite3.OperationalError("attempt to write a readonly "
                                                         "database")))
    assert may_pass(wrapped(psycopg.errors.LockNotAvailable("lock timeout")))
    assert may_pass(wrapped(psycopg.errors.SerializationFailure("could not serialize")))
    assert may_pass(wrapped(psycopg.errors.AdminShutdown("terminating connection")))
    assert may_pass(wrapped(psycopg.OperationalError("server closed the connection")))
    assert not may_pass(wrapped(psycopg.errors.InvalidCatalogName("no such database")))
    assert not may_pass(wrapped(psycopg.errors.UndefinedTable("no such table")))
    assert may_pass(ConflictError("writers kept conflicting"))


def test_patience_retries_what_may_pass_and_stops_on_what_will_not() -> None:
    said: list[str] = []
    failures = [sqlite3.OperationalError("database is locked")] * 2

    def step() -> str:
        if failures:
            raise OperationalError("locked") from failures.pop()
        return "done"

    assert Patience(60.0, "the store", said.append).run(step, "recording") == "done"
    assert len(said) == 1 and said[0].startswith("recording: database is locked; waiting")

    def readonly() -> None:
        raise OperationalError("ro") from sqlite3.OperationalError("attempt to write a "
                                                                   "readonly database")

    with pytest.raises(StoreUnavailable) as stopped:
        Patience(60.0, "ledger.db").run(readonly, "recording line 3")
    assert str(stopped.value).startswith("recording line 3: ledger.db: attempt to write a "
                                         "readonly database (it is read here only: ")

    with pytest.raises(CommandRefused):  # not the store's: not retried, not wrapped
        Patience(60.0).run(lambda: cmd.build(cmd.Pay, {}), "parsing")


def test_settings_come_from_the_environment_and_say_what_is_wrong() -> None:
    found = Settings.from_env({"AFTERSALES_RETRY_FOR": "5", "AFTERSALES_LOCK_TIMEOUT": "0.5",
                               "AFTERSALES_FUTURE_MARGIN": "60"})
    assert (found.retry_for, found.lock_timeout) == (5.0, 0.5)
    assert found.future_margin == timedelta(seconds=60)
    assert Settings.from_env({}) == replace(Settings(), future_margin=timedelta(minutes=10))
    assert Settings(statement_timeout=60).answer_timeout == 75
    assert Settings(statement_timeout=1).answer_timeout == 2
    with pytest.raises(SettingsError, match="AFTERSALES_RETRY_FOR='soon': expected a number"):
        Settings.from_env({"AFTERSALES_RETRY_FOR": "soon"})

