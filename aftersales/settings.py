"""How long the ledger waits, and how far ahead of the wall clock it lets business time run.

Read once at the edge (`Settings.from_env`), from environment variables; the command line
can override some of them.  Every wait the ledger does on its store is bounded by these
(docs/operations.md, "Waits and timeouts"):

    AFTERSALES_LOCK_TIMEOUT       10   seconds a statement waits for a lock (SQLite's busy
                                       timeout, PostgreSQL's lock_timeout)
    AFTERSALES_STATEMENT_TIMEOUT  60   seconds a PostgreSQL statement may run; a server
                                       that does not answer at all is given up on a
                                       quarter of that later (at least 1 s, at most 15)
    AFTERSALES_RETRY_FOR          60   seconds a store failure that may pass (a lost
                                       connection, a locked database, a serialisation
                                       failure, a full disk) is retried before giving up
    AFTERSALES_FUTURE_MARGIN      600  seconds a command's business time may be ahead of
                                       the wall clock (`--allow-future` lifts it)
    AFTERSALES_TZ      Asia/Shanghai   the business time zone: the read models' business
                                       days, and every time a person reads
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from aftersales.errors import SettingsError, ViewsConfigError

TZ_ENV_VAR = "AFTERSALES_TZ"
DEFAULT_TZ = "Asia/Shanghai"

# Names and defaults the command line's help shows, kept here (a module that imports
# nothing heavy) so that `aftersales --help` loads no store, no library of models and no
# SQL toolkit (docs/performance.md, "Starting a command").

#: The ledger's store: --db, else this variable, else this file (`storage.config`).
ENV_VAR, DEFAULT_URL = "AFTERSALES_DB", "sqlite:///aftersales.db"
#: A partitioned ledger's map (`storage.partition_map`).
PARTITIONS_ENV_VAR = "AFTERSALES_PARTITIONS"
#: The read models' database, when not the store's (`projections.database`).
VIEWS_ENV_VAR = "AFTERSALES_VIEWS_DB"
#: The anchor log outside the store (`storage.anchor`).
ANCHOR_ENV_VAR = "AFTERSALES_ANCHOR"
#: Lines (commands and ticks) recorded per transaction (group commit).  With the order
#: cache, it sets the memory of an ingest: measured at 1,000,000 orders (two processes),
#: 309 MB in all with batches of 10,000 lines and 15,000 cached orders, 287 MB with 10,000
#: and 10,000, 264 MB with 7,500 and 10,000; at 100,000 orders 7,500 and 10,000 lines ran
#: at the same speed.
INGEST_BATCH = 7_500
#: Files this large are ingested by several processes by default (one per core, up to
#: four): below it, starting a worker costs more than it saves.
PARALLEL_INGEST_FROM = 4 << 20
#: Events per projection transaction.  Rows an event batch touches several times are
#: written once, so larger batches project faster (measured: 500 → 9,900/s, 10,000 →
#: 17,500/s).
PROJECTION_BATCH = 5000

#: A server that does not answer is given up on this share of the statement timeout after
#: it (so that the server's own cancellation arrives first), within these bounds.
ANSWER_GRACE, GRACE_BOUNDS = 0.25, (1.0, 15.0)


@dataclass(frozen=True)
class Settings:
    lock_timeout: float = 10.0
    statement_timeout: float = 60.0
    retry_for: float = 60.0
    future_margin: timedelta | None = timedelta(minutes=10)  # None: no limit

    @property
    def answer_timeout(self) -> float:
        """How long the client waits for any answer of a PostgreSQL server."""
        low, high = GRACE_BOUNDS
        return self.statement_timeout + min(high, max(low, self.statement_timeout *
                                                      ANSWER_GRACE))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        default = cls()
        margin = _seconds(env, "AFTERSALES_FUTURE_MARGIN", 600.0)
        return cls(
            lock_timeout=_seconds(env, "AFTERSALES_LOCK_TIMEOUT", default.lock_timeout,
                                  bounded=True),
            statement_timeout=_seconds(env, "AFTERSALES_STATEMENT_TIMEOUT",
                                       default.statement_timeout, bounded=True),
            retry_for=_seconds(env, "AFTERSALES_RETRY_FOR", default.retry_for),
            future_margin=timedelta(seconds=margin),
        )


def business_zone(name: str | None = None) -> tuple[str, ZoneInfo]:
    """The business time zone (its name and the zone): `name`, else $AFTERSALES_TZ, else
    Asia/Shanghai; an unknown name is refused."""
    name = name or os.environ.get(TZ_ENV_VAR) or DEFAULT_TZ
    try:
        return name, ZoneInfo(name)
    except (KeyError, ValueError):
        raise ViewsConfigError(f"unknown time zone {name!r} (set {TZ_ENV_VAR} to a name "
                               "such as Asia/Shanghai or UTC)") from None


def millis(seconds: float) -> int:
    """A timeout as the whole milliseconds PostgreSQL takes (at least 1: 0 is no limit)."""
    return max(1, int(seconds * 1000))


def _seconds(env: os._Environ[str] | dict[str, str], name: str, default: float,
             bounded: bool = False) -> float:
    """A setting in seconds; `bounded`: a timeout, which must be more than 0 (every wait
    is bounded: there is no "no limit")."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r}: expected a number of seconds") from None
    low = "more than 0" if bounded else "0"
    if not (value > 0 if bounded else value >= 0) or value >= 10**7:
        raise SettingsError(f"{name}={text!r}: expected {low} to 10,000,000 seconds")
    return value


DEFAULT_SETTINGS = Settings()
