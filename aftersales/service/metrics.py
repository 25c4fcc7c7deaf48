"""The webhook's metrics (`GET /metrics`, Prometheus text format), each in a registry of
the app's own (docs/operations.md says what each means).

Counters count what this process did since it started; the inbox gauges are read from the
store when scraped (so every webhook process behind one address reports the same inbox).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from aftersales.storage.port import InboxStats


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.responses = Counter("aftersales_http_responses", "HTTP answers, by status "
                                 "code and path", ("status", "path"), registry=r)
        self.bodies = Counter("aftersales_webhook_bodies_received", "signed bodies "
                              "committed to the inbox (new: a first copy; again: a body "
                              "the inbox held already)", ("copy",), registry=r)
        self.messages = Counter("aftersales_webhook_messages_received", "messages in the "
                                "bodies committed (first copies)", registry=r)
        self.outcomes = Counter("aftersales_feed_messages", "messages decided by this "
                                "process's applier, by outcome", ("outcome",), registry=r)
        self.backlog = Gauge("aftersales_inbox_backlog", "bodies received, not yet "
                             "applied", registry=r)
        self.received = Gauge("aftersales_inbox_received", "bodies in the inbox",
                              registry=r)
        self.oldest = Gauge("aftersales_inbox_oldest_unapplied_age_seconds", "how long "
                            "the oldest unapplied body has waited (0: none waits)",
                            registry=r)
        self.lag = Gauge("aftersales_applier_lag_seconds", "how long the oldest unapplied "
                         "body has waited beyond the lateness window (0: none)", registry=r)
        self.active = Gauge("aftersales_applier_active", "1 while this process's applier "
                            "holds the store's applier lock", registry=r)
        self.retries = Counter("aftersales_store_retries", "store failures waited out, by "
                               "where", ("where",), registry=r)
        for outcome in ("applied", "reconciled", "refused", "reported", "ignored",
                        "duplicate"):
            self.outcomes.labels(outcome)  # present at 0 before the first message

    def inbox(self, stats: InboxStats, age: float, lateness: float) -> None:
        """Set the inbox gauges from the store's figures; `age`: the oldest unapplied
        body's wait in seconds."""
        self.backlog.set(stats.backlog)
        self.received.set(stats.received)
        self.oldest.set(age)
        self.lag.set(max(0.0, age - lateness))
