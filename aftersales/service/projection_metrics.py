"""`project --follow --metrics-port`: the follower's metrics, in Prometheus' text format,
in a registry of its own (docs/commands.md says what each means).

The position and the lag in events are set by the follow loop (after each batch, and each
time it has caught up, before it waits); the lag in seconds is worked out when scraped,
from the recorded time of the oldest event not yet projected, so that it keeps growing
while the follower is stuck.  The counters count what this process did since it started.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from threading import Thread
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from aftersales.application.clock import wall_clock


class Lag(Protocol):
    """The read models' lag as the runner reads it (`projections.runner.Lag`: the service
    does not import the read side)."""

    @property
    def position(self) -> int: ...

    @property
    def events(self) -> int: ...

    def seconds(self, now: datetime) -> float | None: ...


class ProjectionMetrics:
    def __init__(self, now: Callable[[], datetime] = wall_clock) -> None:
        self.now = now
        self.registry = r = CollectorRegistry()
        self.position = Gauge("aftersales_projection_position", "the last notification id "
                              "projected into the read models", registry=r)
        self.lag_events = Gauge("aftersales_projection_lag_events", "the ledger's last "
                                "notification id minus the position", registry=r)
        self.lag_seconds = Gauge("aftersales_projection_lag_seconds", "wall clock minus "
                                 "the recorded time of the oldest event not yet projected "
                                 "(0: caught up; NaN: unknown)", registry=r)
        self.lag_seconds.set_function(self._seconds_behind)
        self.events = Counter("aftersales_projection_events", "events projected by this "
                              "process (its rate: events per second)", registry=r)
        self.retries = Counter("aftersales_store_retries", "store failures waited out, by "
                               "where", ("where",), registry=r)
        self.retries.labels("projection")  # present at 0 before the first failure
        self._lag: Lag | None = None
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None
        self.address: tuple[str, int] = ("", 0)

    def observe(self, lag: Lag) -> None:
        """The read models' lag, as read just now."""
        self._lag = lag  # one object, swapped whole: a scrape sees one reading or the next
        self.position.set(lag.position)
        self.lag_events.set(lag.events)

    def projected(self, n: int) -> None:
        self.events.inc(n)

    def retried(self) -> None:
        self.retries.labels("projection").inc()

    def _seconds_behind(self) -> float:
        lag = self._lag
        seconds = None if lag is None else lag.seconds(self.now())
        return math.nan if seconds is None else seconds

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Answer scrapes at http://host:port/ (any path) from a thread; the address
        bound.  OSError if it cannot be bound."""
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        bound = self._server.server_address
        self.address = str(bound[0]), int(bound[1])
        return self.address

    @property
    def url(self) -> str:
        """Where the metrics are served (after `serve`)."""
        host, port = self.address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
