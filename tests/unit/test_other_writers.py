"""What an ingest notes of orders other writers moved on: the earliest version it held,
each order found once, and no more of either than the limit."""

from __future__ import annotations

from uuid import uuid4

from aftersales.application.other_writers import OtherWriters


def test_the_earliest_version_held_counts_and_an_order_is_found_once() -> None:
    others = OtherWriters()
    a, b = uuid4(), uuid4()
    others.held(a, 3)
    others.held(a, 5)  # noted again later (a second conflict): still 3
    assert others.moved == {a: 3}
    others.found(a, "D1")
    others.found(a, "D1")
    others.found(b, "D2")
    assert others.take() == ["D1", "D2"] and others.take() == []
    del others.moved[a]
    others.held(a, 7)  # found already: not looked at again
    assert others.moved == {} and others.known(a)


def test_notes_and_finds_are_bounded() -> None:
    others = OtherWriters(limit=3)
    ids = [uuid4() for _ in range(5)]
    for n, oid in enumerate(ids):
        others.held(oid, n)
    assert list(others.moved) == ids[2:]  # the oldest notes go first
    for n, oid in enumerate(ids):
        others.found(oid, f"D{n}")
    assert others.take() == ["D0", "D1", "D2"]
