"""The orders this process last recorded, kept in memory between units of work.

An ingest decides most commands on orders it recorded a moment before; loading each from
the store again (its events read, checked and folded) would cost more than deciding it.
Before a unit of work uses a cached order, `UnitOfWork.refresh` drops those that other
writers recorded events for since (the log's tail, less this process's own positions).
"""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

from aftersales.domain.order import Order

#: Orders kept between batches (about 2 KB each, measured on orders of six or seven events).
CACHE_SIZE = 10_000


class OrderCache:
    """Orders as last recorded by this process, by order id, least recently used dropped
    first.  `checked` is the log position up to which other writers' events were looked
    at (`UnitOfWork.refresh`); this process's own events since are in `own`."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._orders: OrderedDict[str, Order] = OrderedDict()
        self._ids: dict[UUID, str] = {}
        self.checked = 0
        self._own: list[tuple[int, int]] = []

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def put(self, order: Order) -> None:
        if order.order_id not in self._orders:
            self._ids[order.id] = order.order_id
        self._orders[order.order_id] = order
        self._orders.move_to_end(order.order_id)
        while len(self._orders) > self.size:
            _, dropped = self._orders.popitem(last=False)
            del self._ids[dropped.id]

    def drop(self, order_id: str) -> Order | None:
        """Forget the order; the order as it was held (None: it was not)."""
        dropped = self._orders.pop(order_id, None)
        if dropped is not None:
            del self._ids[dropped.id]
        return dropped

    def drop_id(self, originator_id: UUID) -> Order | None:
        order_id = self._ids.get(originator_id)
        return None if order_id is None else self.drop(order_id)

    def orders(self) -> list[Order]:
        return list(self._orders.values())

    def clear(self) -> None:
        self._orders.clear()
        self._ids.clear()

    def recorded(self, first: int, last: int) -> None:
        """This process recorded the events at these positions."""
        self._own.append((first, last))

    def others(self, upto: int) -> list[tuple[int, int]]:
        """The log positions after `checked` up to `upto` that this process did not record,
        as (after, upto) ranges."""
        gaps = []
        after = self.checked
        for first, last in sorted(self._own):
            if first - 1 > after:
                gaps.append((after, min(first - 1, upto)))
            after = max(after, last)
        if upto > after:
            gaps.append((after, upto))
        return [(a, b) for a, b in gaps if b > a]

    def checked_upto(self, position: int) -> None:
        self.checked = position
        self._own = [(a, b) for a, b in self._own if b > position]

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def __len__(self) -> int:
        return len(self._orders)
