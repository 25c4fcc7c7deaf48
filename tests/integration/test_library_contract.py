"""eventsourcing's own reusable test cases, run on the ledger's recorders (memory, SQLite,
PostgreSQL), its transcoder and its read models' tracking recorder: where the ledger
replaces a library path, it keeps the library's contract."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoder,
    UUIDAsHex,
)
from eventsourcing.tests import application as lib_app
from eventsourcing.tests import persistence as lib
from eventsourcing.utils import Environment
from sqlalchemy.engine import make_url

from aftersales.readmodels.database import ReadModels
from aftersales.storage.codec import FastJSONTranscoder
from aftersales.storage.config import eventsourcing_env
from aftersales.storage.memory import MemoryLedgerRecorder
from aftersales.storage.postgres import LedgerPostgresFactory
from aftersales.storage.sqlite import LedgerSQLiteFactory
from tests.conftest import PG_URL, drop_schema, new_schema_url

SQLITE_TOPIC = "aftersales.storage.sqlite:LedgerSQLiteFactory"
POSTGRES_TOPIC = "aftersales.storage.postgres:LedgerPostgresFactory"


class _SQLiteFile:
    """A fresh SQLite file per test."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.path = str(Path(self._tmp.name) / "contract.db")
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        self._tmp.cleanup()


class _PostgresSchema:
    """A fresh PostgreSQL schema per test (dropped after)."""

    def setUp(self) -> None:
        self.url = new_schema_url()  # fails in CI when there is no server
        self.env = eventsourcing_env(self.url)
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        drop_schema(self.url)


# --- recorders ------------------------------------------------------------------------


class TestMemoryRecorderContract(lib.ApplicationRecorderTestCase[MemoryLedgerRecorder]):
    def create_recorder(self) -> MemoryLedgerRecorder:
        return MemoryLedgerRecorder()


class TestSQLiteRecorderContract(_SQLiteFile, lib.ApplicationRecorderTestCase[Any]):
    def create_recorder(self) -> Any:
        return LedgerSQLiteFactory(Environment(env={"SQLITE_DBNAME": self.path})
                                   ).application_recorder()


class TestSQLiteNonInterleaving(_SQLiteFile, lib.NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> Any:
        return LedgerSQLiteFactory(Environment(env={"SQLITE_DBNAME": self.path})
                                   ).application_recorder()


class TestPostgresRecorderContract(_PostgresSchema, lib.ApplicationRecorderTestCase[Any]):
    def create_recorder(self) -> Any:
        factory = LedgerPostgresFactory(Environment("aftersales", self.env))
        self.addCleanup(factory.close)
        return factory.application_recorder()


class TestPostgresNonInterleaving(_PostgresSchema, lib.NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> Any:
        factory = LedgerPostgresFactory(Environment("aftersales", self.env))
        self.addCleanup(factory.close)
        return factory.application_recorder()


# --- the transcoder -------------------------------------------------------------------


def _registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(),
                        lib.CustomType1AsDict(), lib.CustomType2AsDict()):
        transcoder.register(transcoding)
    return transcoder


class TestFastTranscoderContract(lib.TranscoderTestCase):
    """The library's case, as its own JSONTranscoder runs it: six of its tests are for
    transcoders that keep tuples and subclasses of dict, list, str and int, which the
    library's JSONTranscoder turns into their plain types (its own suite skips them).  Here
    each of those checks instead that the fast transcoder writes and reads exactly what
    the library's does."""

    def construct_transcoder(self) -> Transcoder:
        return _registered(FastJSONTranscoder())

    def same_as_the_library(self, *values: Any) -> None:
        library = _registered(JSONTranscoder())
        for value in values:
            data = self.transcoder.encode(value)
            self.assertEqual(data, library.encode(value))
            self.assertEqual(self.transcoder.decode(data), library.decode(data))

    def test_tuple(self) -> None:
        self.same_as_the_library((), (1,), (1, "a"), {"a": (1, (2, 3))})

    def test_mixed(self) -> None:
        self.same_as_the_library([(1, "a"), {"b": 2}], ([1, "a"], {"b": 2}),
                                 {"a": (1, 2), "b": [3, 4]})

    def test_dict_subclass(self) -> None:
        self.same_as_the_library(lib.Mydict({"a": 1}), {"x": lib.Mydict({"a": 1})})

    def test_list_subclass(self) -> None:
        self.same_as_the_library(lib.MyList((("a", 1),)), {"x": lib.MyList([1])})

    def test_str_subclass(self) -> None:
        self.same_as_the_library(lib.MyStr("a"), {"x": lib.MyStr("a")})

    def test_int_subclass(self) -> None:
        self.same_as_the_library(lib.MyInt(3), {"x": lib.MyInt(3)})


# --- the read models' tracking recorder -----------------------------------------------


class TestSQLiteTrackingContract(_SQLiteFile, lib.TrackingRecorderTestCase):
    def create_recorder(self) -> ReadModels:
        views = ReadModels(f"sqlite:///{self.path}")
        self.addCleanup(views.close)
        views.create_table()
        return views


class TestPostgresTrackingContract(_PostgresSchema, lib.TrackingRecorderTestCase):
    def create_recorder(self) -> ReadModels:
        views = ReadModels(self.url)
        self.addCleanup(views.close)
        views.create_table()
        return views


# --- applications on the ledger's persistence -----------------------------------------


class _Persistence:
    """The process environment selects the ledger's persistence, as a deployment would."""

    topic: ClassVar[str]

    def setUp(self) -> None:
        self._saved = dict(os.environ)
        os.environ.update(self.persistence_env())
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        os.environ.clear()
        os.environ.update(self._saved)

    def persistence_env(self) -> dict[str, str]:
        raise NotImplementedError


class _SQLitePersistence(_SQLiteFile, _Persistence):
    topic = SQLITE_TOPIC
    expected_factory_topic = SQLITE_TOPIC

    def persistence_env(self) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": SQLITE_TOPIC, "SQLITE_DBNAME": self.path}


class _PostgresPersistence(_PostgresSchema, _Persistence):
    topic = POSTGRES_TOPIC
    expected_factory_topic = POSTGRES_TOPIC

    def persistence_env(self) -> dict[str, str]:
        return self.env


class _ApplicationCase(lib_app.ApplicationTestCase):
    def test_application_log(self) -> None:
        """The library's check that `log` warns it is deprecated: the warning recorded,
        as the library expects, not raised (this suite turns warnings into errors)."""
        with warnings.catch_warnings():
            warnings.simplefilter("always", DeprecationWarning)
            super().test_application_log()


class TestSQLiteApplicationContract(_SQLitePersistence, _ApplicationCase):
    pass


class TestSQLiteExampleApplication(_SQLitePersistence, lib_app.ExampleApplicationTestCase):
    pass


class TestPostgresApplicationContract(_PostgresPersistence, _ApplicationCase):
    pass


class TestPostgresExampleApplication(_PostgresPersistence,
                                     lib_app.ExampleApplicationTestCase):
    pass


class TestMemoryApplicationContract(_Persistence, _ApplicationCase):
    def persistence_env(self) -> dict[str, str]:
        return {"PERSISTENCE_MODULE": "aftersales.storage.memory:LedgerPOPOFactory"}


# --- the three faults this suite found ------------------------------------------------


def test_sqlite_insert_events_returns_the_notification_ids(tmp_path: Path) -> None:
    from aftersales import Ledger
    from tests.scenario import Scenario

    ledger = Ledger(f"sqlite:///{tmp_path / 'ids.db'}")
    Scenario(ledger, "online")
    order = ledger.get_order("D1")
    assert order is not None
    order.pay(order.placed_at, command_id=None, policy=ledger.policy)
    recordings = ledger.save(order)
    assert [r.notification.id for r in recordings] == [2]
    ledger.close()


def test_a_registered_datetime_transcoding_subclass_is_used() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    class AsUTC(DatetimeAsISO):
        def encode(self, obj: datetime) -> str:
            return obj.astimezone(UTC).isoformat()

    library, fast = JSONTranscoder(), FastJSONTranscoder()
    for transcoder in (library, fast):
        transcoder.register(AsUTC())
    value = {"at": datetime(2026, 3, 1, 10, tzinfo=timezone(timedelta(hours=8)))}
    assert fast.encode(value) == library.encode(value)
    assert b"02:00:00+00:00" in fast.encode(value)
    assert fast.decode(fast.encode(value)) == library.decode(library.encode(value))


def test_postgres_writers_take_the_events_lock_before_any_row_lock() -> None:
    """Every write of the ledger takes the events table's lock before it touches a row
    of its other tables (the deadline repair always did): an insert that waits for the
    lock holds nothing another writer could be waiting for.  (It used to write the index
    rows first, so an insert and a repair of one order could deadlock.)"""
    import threading
    import time

    import psycopg

    from aftersales import Ledger
    from tests.conftest import _conninfo
    from tests.scenario import Scenario

    url = new_schema_url()
    schema = url.rsplit("schema=", 1)[1]
    ledger = Ledger(url)
    try:
        s = Scenario(ledger, "online")
        with psycopg.connect(_conninfo(make_url(PG_URL).database or "")) as holder, \
                psycopg.connect(_conninfo(make_url(PG_URL).database or ""),
                                autocommit=True) as watcher:
            holder.execute(f'LOCK TABLE "{schema}".aftersales_events IN EXCLUSIVE MODE')
            done = threading.Event()
            thread = threading.Thread(target=lambda: (s.do("pay"), done.set()))
            thread.start()
            waiting: list[tuple[Any, ...]] = []
            deadline = time.monotonic() + 30
            while not waiting and time.monotonic() < deadline:  # until the insert waits
                waiting = watcher.execute(
                    "SELECT pid FROM pg_locks WHERE NOT granted AND relation = "
                    "%s::regclass", (f'"{schema}".aftersales_events',)).fetchall()
            assert waiting, "the insert never waited for the events table's lock"
            held = watcher.execute(
                "SELECT relation::regclass::text FROM pg_locks WHERE pid = %s AND granted "
                "AND relation IS NOT NULL", (waiting[0][0],)).fetchall()
            assert not [r for r, in held if "ledger_" in r], held
            assert not done.is_set()
            holder.rollback()  # the lock is released: the insert goes on
            thread.join(timeout=30)
            assert done.is_set()
        assert s.order_status == "paid"
    finally:
        ledger.close()
        drop_schema(url)


del _ApplicationCase  # a base: run through the subclasses above, each on its store
