"""Anchors outside the store: the log's position and head digest, with the time, appended
to an anchor log that the ledger's database does not hold (`aftersales anchor`), and the
log checked against every one of them (`aftersales verify`).

An anchor target is named by `--to`, `--anchor-to`, `--anchors` or $AFTERSALES_ANCHOR:

    /srv/anchors/ledger.jsonl             a file: JSON Lines, one anchor a line, each line
                                          appended whole (O_APPEND) and synced
    sqlite:////mnt/vault/anchors.db       another database: its table `ledger_anchors`
    postgresql://anchorer@vault/anchors   (created if missing) is only ever inserted into

A line of the file reads `{"position": 14603, "head": "3f…9c", "at": "2026-12-07T08:00:00Z"}`:
the position of the log's last event, that event's link (the head digest `verify` prints)
and the wall-clock time it was taken, in UTC.  A partitioned ledger's anchor is one line
per partition, taken at the same time, each naming its partition and how many there are
(`"partition": 1, "of": 4`; the table's columns `partition` and `partitions`): together
they hold the combined head `verify` prints.

An anchor (P, D) holds while the log still has an event at position P whose link is D, and
the log chain does not break at or before P (`aftersales.storage.integrity`).  A history
rewritten with every digest after the change recomputed has another link at P; events
removed from the log's end leave P beyond it.  The ledger's own database is refused as a
target: whoever can rewrite the events could rewrite the anchors with them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Identity,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from aftersales.errors import AnchorLogError, StoreConfigError
from aftersales.settings import ANCHOR_ENV_VAR, DEFAULT_SETTINGS, Settings
from aftersales.storage.config import PostgresTarget, postgres_target, redacted, sqlite_path
from aftersales.storage.port import LedgerRecorder
from aftersales.storage.retry import retry_races

TABLE = "ledger_anchors"
#: Anchored positions this close together are read in one page of the log.
WINDOW = 256
_HEX = re.compile(r"[0-9a-fA-F]{64}")
_SHAPE = ('{"position": N, "head": "64 hex digits", "at": "an ISO 8601 time with Z or an '
          'offset"} (a partition\'s: with "partition": K, "of": N)')

#: Whose log an anchor is of: None (one store's), or (partition, partitions).
Part = tuple[int, int] | None


@dataclass(frozen=True)
class Anchor:
    """The log's position `position` had the link `head` (32 bytes) at `at` (aware; kept
    in UTC, to the second); of partition `part[0]` of `part[1]` (None: one store's)."""

    position: int
    head: bytes
    at: datetime
    part: Part = None

    def __post_init__(self) -> None:
        if self.position < 1 or len(self.head) != 32 or self.at.tzinfo is None or (
                self.part is not None and not 0 <= self.part[0] < self.part[1] <= 16):
            raise ValueError(f"not an anchor: {self!r}")
        object.__setattr__(self, "at", self.at.astimezone(UTC).replace(microsecond=0))

    def line(self) -> str:
        """The anchor as a line of an anchor file (without its newline)."""
        return json.dumps({"position": self.position, "head": self.head.hex(),
                           "at": self.at.isoformat().replace("+00:00", "Z"),
                           **({} if self.part is None else
                              {"partition": self.part[0], "of": self.part[1]})})

    @property
    def when(self) -> str:
        """Its time as a person reads it: `2026-12-07 08:00:00 UTC`."""
        return self.at.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class AnchorFailure:
    """An anchor the log no longer holds, and why."""

    anchor: Anchor
    reason: str

    def describe(self) -> str:
        return f"anchor of {self.anchor.when}: {self.reason}"


def anchor_target(given: str | None) -> str | None:
    """The anchor log named: `given`, else $AFTERSALES_ANCHOR, else None (none)."""
    return given or os.environ.get(ANCHOR_ENV_VAR, "").strip() or None


# --- where the anchor log is ------------------------------------------------------------


def check_target(target: str, ledger_url: str) -> None:
    """Refuse (`AnchorLogError`) a target that names no usable anchor log, or the ledger's
    own database (the same SQLite file, the same PostgreSQL database in any schema)."""
    _kind(target)
    mine, theirs = _place(target), _place(ledger_url)
    if mine is not None and mine == theirs:
        raise AnchorLogError(
            f"the anchor log {redacted(target)} is in the ledger's own database "
            f"({redacted(ledger_url)}): whoever can rewrite the events could rewrite the "
            "anchors with them.  Keep it elsewhere: another file, host or database "
            "(docs/operations.md, \"Anchoring the head outside the store\")")


def _kind(target: str) -> str:
    """`file`, `sqlite` or `postgresql`; anything else is refused."""
    if target.startswith("memory:"):
        raise AnchorLogError(f"anchor log {target!r}: memory keeps nothing; give a file, "
                             "sqlite:///PATH or postgresql://USER@HOST/DB")
    if target.startswith("sqlite:"):
        if not target.startswith("sqlite:///") or target in ("sqlite:///", "sqlite:///:memory:"):
            raise AnchorLogError(f"anchor log {target!r}: expected sqlite:///PATH")
        return "sqlite"
    try:
        if postgres_target(target) is not None:
            return "postgresql"
    except StoreConfigError as e:
        raise AnchorLogError(f"anchor log {redacted_or(target)}: {e}") from None
    if "://" in target:
        raise AnchorLogError(f"anchor log {redacted_or(target)}: unknown kind; give a file, "
                             "sqlite:///PATH or postgresql://USER@HOST/DB")
    return "file"


def redacted_or(target: str) -> str:
    """The target without its password, if it can be taken apart."""
    try:
        return redacted(target)
    except StoreConfigError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", target)


_LOOPBACK = {"", "localhost", "127.0.0.1", "::1"}


def _place(url_or_path: str) -> tuple[str, ...] | None:
    """Where a store or anchor log is, to compare: (`file`, real path) or (`postgresql`,
    host, port, database); None for memory."""
    if url_or_path.startswith("memory:"):
        return None
    target = None
    try:
        target = postgres_target(url_or_path)
    except StoreConfigError:
        return None
    if target is not None:
        host = target.url.host or ""
        return ("postgresql", "localhost" if host in _LOOPBACK else host.lower(),
                str(target.url.port or 5432), str(target.url.database))
    path = sqlite_path(url_or_path)
    if path is None:
        if "://" in url_or_path or url_or_path.startswith("sqlite:"):
            return None
        path = url_or_path
    return ("file", _real(path))


def _real(path: str) -> str:
    """A file's identity: its device and inode if it exists, else its real path."""
    try:
        stat = os.stat(path)
        return f"{stat.st_dev}:{stat.st_ino}"
    except OSError:
        return os.path.realpath(path)


# --- the anchor log itself ----------------------------------------------------------------


class AnchorLog(Protocol):
    """An append-only log of anchors."""

    target: str

    def read(self) -> list[Anchor]:
        """Every anchor, in the order appended (none: no log there yet)."""

    def last(self) -> Anchor | None:
        """The anchor appended last (None: none yet)."""

    def append(self, anchor: Anchor) -> None:
        """Append one anchor, durably, whole."""

    def close(self) -> None: ...


def open_anchor_log(target: str, ledger_url: str,
                    settings: Settings = DEFAULT_SETTINGS) -> AnchorLog:
    """The anchor log `target` names (checked: `check_target`); nothing is created until
    an anchor is appended."""
    check_target(target, ledger_url)
    kind = _kind(target)
    if kind == "file":
        return FileAnchorLog(target)
    return DatabaseAnchorLog(target, settings)


def parse_anchors(lines: Iterable[bytes | str], source: str) -> list[Anchor]:
    """The anchors of JSON Lines (blank lines skipped); a line that is not an anchor is an
    `AnchorLogError` naming `source` and the line's number."""
    found = []
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            raise AnchorLogError(f"anchor log {source}, line {number}: not UTF-8 text; "
                                 f"expected {_SHAPE}") from None
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as e:
            raise AnchorLogError(f"anchor log {source}, line {number}: not JSON ({e}); "
                                 f"expected {_SHAPE}") from None
        found.append(_anchor(value, f"anchor log {source}, line {number}"))
    return found


def _anchor(value: Any, where: str) -> Anchor:
    if not isinstance(value, dict):
        raise AnchorLogError(f"{where}: not an anchor; expected {_SHAPE}")
    position, head, at = value.get("position"), value.get("head"), value.get("at")
    partition = value.get("partition")
    of = value.get("of", value.get("partitions"))
    if not isinstance(position, int) or isinstance(position, bool) or position < 1:
        why = f"position {position!r} is not a position (a whole number, 1 or more)"
    elif not isinstance(head, str) or not _HEX.fullmatch(head):
        why = f"head {head!r} is not a digest (64 hex digits)"
    elif (partition, of) != (None, None) and not (
            type(partition) is int and type(of) is int and 0 <= partition < of <= 16):
        why = f"partition {partition!r} of {of!r} is not a partition (0 to 15, of 1 to 16)"
    else:
        when = _time(at)
        if when is None:
            why = f"at {at!r} is not an ISO 8601 time with Z or an offset"
        else:
            part: Part = None if partition is None else (int(partition), int(of or 0))
            return Anchor(position, bytes.fromhex(head), when, part)
    raise AnchorLogError(f"{where}: {why}; expected {_SHAPE}")


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


class FileAnchorLog:
    """Anchors as JSON Lines in a file: each line written whole with one `write` on a
    descriptor opened O_APPEND, then synced (and the directory synced when the file is
    new), so that appenders never interleave and an acknowledged anchor is on disk."""

    def __init__(self, path: str) -> None:
        self.target = self.path = path

    def read(self) -> list[Anchor]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise AnchorLogError(f"cannot read the anchor log {self.path}: "
                                 f"{e.strerror or e}") from None
        return parse_anchors(data.split(b"\n"), self.path)

    def last(self) -> Anchor | None:
        found = self.read()
        return found[-1] if found else None

    def append(self, anchor: Anchor) -> None:
        data = (anchor.line() + "\n").encode()
        new = not os.path.exists(self.path)
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                readable = True
            except PermissionError:  # a file this user may only append to
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                readable = False
            try:
                size = os.fstat(fd).st_size
                if readable and size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a torn last line stays a line of its own
                if os.write(fd, data) != len(data):
                    raise AnchorLogError(f"the anchor log {self.path}: the line was written "
                                         "only in part (is the disk full?)")
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                _sync_directory(os.path.dirname(os.path.abspath(self.path)))
        except OSError as e:
            raise AnchorLogError(f"cannot append to the anchor log {self.path}: "
                                 f"{e.strerror or e}") from None

    def close(self) -> None:
        pass


def _sync_directory(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


metadata = MetaData()
anchors_table = Table(
    TABLE, metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("head", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    # A partitioned ledger's anchors: which partition of how many (None: one store's).
    Column("partition", Integer, nullable=True),
    Column("partitions", Integer, nullable=True),
)
#: The columns of a table made before partitions.
_FIRST_COLUMNS = ("id", "position", "head", "at")


class DatabaseAnchorLog:
    """Anchors as rows of `ledger_anchors` in another database (SQLite or PostgreSQL), only
    ever inserted: the role that appends needs INSERT and SELECT on it, nothing more, once
    the table is there.  Store failures are raised as the driver's (the caller's patience
    decides how long to try again)."""

    def __init__(self, url: str, settings: Settings = DEFAULT_SETTINGS) -> None:
        self.target = url
        self.path = sqlite_path(url)
        self.postgres = postgres_target(url)
        self.engine = _engine(url, self.postgres, settings)

    def read(self) -> list[Anchor]:
        return self._rows(lambda columns: select(*columns).order_by(anchors_table.c.id))

    def last(self) -> Anchor | None:
        found = self._rows(lambda columns: select(*columns).order_by(
            anchors_table.c.id.desc()).limit(1))
        return found[0] if found else None

    def _rows(self, query: Any) -> list[Anchor]:
        if self.path is not None and not os.path.exists(self.path):
            return []  # (connecting would create the file)
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(TABLE):
                return []
            rows = conn.execute(query(self._columns(conn))).mappings().all()
        return [_anchor(dict(r), f"anchor log {redacted(self.target)}, "
                        f"table {TABLE}, row id {r['id']}") for r in rows]

    @staticmethod
    def _columns(conn: Any) -> list[Any]:
        """The table's columns as this table has them (one made before partitions has
        no partition columns: its anchors are one store's)."""
        found = {c["name"] for c in inspect(conn).get_columns(TABLE)}
        return [c for c in anchors_table.c if c.name in found]

    def append(self, anchor: Anchor) -> None:
        retry_races(self._create, (sa_exc.DBAPIError,))
        with self.engine.begin() as conn:
            values: dict[str, Any] = {
                "position": anchor.position, "head": anchor.head.hex(),
                "at": anchor.at if self.postgres is not None else anchor.at.replace(
                    tzinfo=None)}
            if anchor.part is not None:
                if len(self._columns(conn)) == len(_FIRST_COLUMNS):
                    raise AnchorLogError(
                        f"the anchor log {redacted(self.target)}: its table {TABLE} was "
                        "made before partitions (no partition columns): give a partitioned "
                        "ledger's anchors a log of their own")
                values.update(partition=anchor.part[0], partitions=anchor.part[1])
            conn.execute(insert(anchors_table).values(**values))

    def _create(self) -> None:
        """The table (and the URL's schema), if missing: looked for first, so that a role
        that may only insert never needs to create anything."""
        with self.engine.begin() as conn:
            if inspect(conn).has_table(TABLE):
                return
            schema = None if self.postgres is None else self.postgres.schema
            if schema not in (None, "public") and not inspect(conn).has_schema(schema):
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            metadata.create_all(conn)

    def close(self) -> None:
        self.engine.dispose()


def _engine(url: str, target: PostgresTarget | None, settings: Settings) -> Engine:
    """A connection at a time (an anchor is appended every few minutes), every wait bounded
    as the ledger's own are."""
    if target is None:
        return create_engine(url, poolclass=NullPool,
                             connect_args={"timeout": settings.lock_timeout})
    from aftersales.storage.connections import answering, connect_kwargs
    connection = answering(settings.answer_timeout)
    kwargs = connect_kwargs(target, settings)
    return create_engine("postgresql+psycopg://", poolclass=NullPool,
                         creator=lambda: connection.connect(**kwargs))


# --- the log held against the anchors -----------------------------------------------------


def log_head(recorder: LedgerRecorder, end: int) -> tuple[int, bytes] | None:
    """The log's last event at or after position `end` (the log's end as read just before)
    and its link: what an anchor records (None: the log holds no events)."""
    if end <= 0:
        return None
    rows = recorder.links_page(end - 1, 1)
    if not rows:
        raise AnchorLogError(f"the log's last event, at position {end}, is gone since its "
                             "end was read: run `aftersales verify`")
    row = rows[0]
    if row.link is None:
        raise AnchorLogError(f"the event at log position {row.id} has no link (written "
                             "before the chained record): run `aftersales db upgrade`")
    return row.id, row.link


def links_at(recorder: LedgerRecorder, positions: Iterable[int]) -> dict[int, bytes | None]:
    """The stored links at these log positions (a position without an event is left out),
    read a page at a time: positions close together share one."""
    wanted = sorted(set(positions))
    found: dict[int, bytes | None] = {}
    i = 0
    while i < len(wanted):
        j = i
        while j + 1 < len(wanted) and wanted[j + 1] - wanted[i] < WINDOW:
            j += 1
        rows = {r.id: r.link for r in recorder.links_page(wanted[i] - 1,
                                                          wanted[j] - wanted[i] + 1)}
        found.update((p, rows[p]) for p in wanted[i:j + 1] if p in rows)
        i = j + 1
    return found


def check_anchors(anchors: Sequence[Anchor], links: Mapping[int, bytes | None], end: int,
                  log_breaks: Iterable[int]) -> list[AnchorFailure]:
    """The anchors the log does not hold: `links` are the stored links at their positions
    (`links_at`), `end` the log's last position, `log_breaks` the positions where the log
    chain breaks (`verify`'s walk)."""
    first_break = min(log_breaks, default=None)
    failures = []
    for a in anchors:
        p = a.position
        if p > end:
            reason = (f"the log now ends at position {end} but the anchor recorded position "
                      f"{p}: events were removed from its end" if end else
                      f"the log now holds no events but the anchor recorded position {p}: "
                      "its events were removed")
        elif p not in links:
            reason = (f"position {p} is no longer in the log: the event anchored there was "
                      "removed")
        elif links[p] != a.head:
            reason = f"position {p} now has another link: the history up to it was rewritten"
        elif first_break is not None and first_break <= p:
            reason = (f"position {p} still has the link anchored, but the log chain breaks "
                      f"at position {first_break}" + (", before it" if first_break < p else "")
                      + ": an event up to it was changed, removed or inserted")
        else:
            continue
        failures.append(AnchorFailure(a, reason))
    return failures
