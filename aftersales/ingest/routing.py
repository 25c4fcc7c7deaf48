"""How parallel ingest splits a command file: by order.

Each order's lines go to the worker that owns its shard (`aftersales.storage.shard`), so an
order's commands are all decided by one worker, in file order, and its events are exactly
those of a one-process ingest.  Ticks go to every worker, and each sweeps the orders it
owns (the stores filter their deadline index by the same shard).  A line that is not a
JSON object with an order id goes to worker 0, which refuses it as a one-process ingest
would.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from aftersales.storage.shard import shard_of

EVERY = -1  # `owner` of a tick: every worker


class Route(NamedTuple):
    """Where a line of a command file goes: its worker (`EVERY` for a tick) and its
    explicit command id, if it has one."""

    owner: int
    command_id: str | None = None


def route(text: str, count: int) -> Route:
    """The route of a line (decoded text).  Read with orjson, not validated: whatever the
    worker's strict parser then says of the line, only its owner decides it."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Route(0)
    if type(doc) is not dict:
        return Route(0)
    if doc.get("command") == "tick":
        return Route(EVERY)
    order_id = doc.get("order_id")
    if type(order_id) is not str:
        return Route(0)
    command_id = doc.get("command_id")
    return Route(shard_of(order_id) % count,
                 command_id if type(command_id) is str else None)

