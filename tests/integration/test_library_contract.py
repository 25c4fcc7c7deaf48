"""eventsourcing's own reusable test cases, run on the ledger's recorders (memory, SQLite,
PostgreSQL, each durable store with uuid and with text originator ids), its infrastructure
factories, its transcoder and its read models' tracking recorder: where the ledger
replaces a library path, it keeps the library's contract."""

from __future__ import annotations

import os
import tempfile
import warnings
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

import psycopg
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatetimeAsISO,
    DecimalAsStr,
    InfrastructureFactory,
    JSONTranscoder,
    ProcessRecorder,
    StoredEvent,
    TrackingRecorder,
    Transcoder,
    UUIDAsHex,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteProcessRecorder,
    SQLiteTrackingRecorder,
)
from eventsourcing.tests import application as lib_app
from eventsourcing.tests import persistence as lib
from eventsourcing.utils import Environment, get_topic
from psycopg import sql
from sqlalchemy.engine import make_url

from aftersales.storage.codec import FastJSONTranscoder
from aftersales.storage.config import eventsourcing_env
from aftersales.storage.memory import MemoryLedgerRecorder
from aftersales.storage.postgres import LedgerPostgresFactory, PostgresLedgerRecorder
from aftersales.storage.sqlite import LedgerSQLiteFactory, SQLiteLedgerRecorder
from projections.database import ReadModels
from tests.conftest import PG_URL, _conninfo, drop_schema, new_schema_url

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


class _IdType:
    """Which originator ids the library's recorders keep (`ORIGINATOR_ID_TYPE`): uuid, the
    library's default and the ledger's (its orders' ids are uuid5s)..."""

    id_type: ClassVar[str] = "uuid"


class _TextIds(_IdType):
    """...or text: the same cases again with ids that are no UUID, as the library's own
    suite runs them on its recorders (its `WithTextOriginatorID`)."""

    id_type = "text"

    def new_originator_id(self) -> UUID | str:
        return f"test-{uuid4()}"


class TestMemoryRecorderContract(lib.ApplicationRecorderTestCase[MemoryLedgerRecorder]):
    """(POPO keeps whatever ids it is given: it has no id type.)"""

    def create_recorder(self) -> MemoryLedgerRecorder:
        return MemoryLedgerRecorder()


class _SQLiteRecorder(_IdType, _SQLiteFile):
    def create_recorder(self) -> Any:
        return LedgerSQLiteFactory(Environment(env={
            "SQLITE_DBNAME": self.path, "ORIGINATOR_ID_TYPE": self.id_type,
        })).application_recorder()


class _PostgresRecorder(_IdType, _PostgresSchema):
    def create_recorder(self) -> Any:
        factory = LedgerPostgresFactory(Environment("aftersales", {
            **self.env, "ORIGINATOR_ID_TYPE": self.id_type}))
        self.addCleanup(factory.close)  # type: ignore[attr-defined]
        return factory.application_recorder()


class TestSQLiteRecorderContract(_SQLiteRecorder, lib.ApplicationRecorderTestCase[Any]):
    pass


class TestSQLiteRecorderContractTextIds(_TextIds, TestSQLiteRecorderContract):
    pass


class TestSQLiteNonInterleaving(_SQLiteRecorder, lib.NonInterleavingNotificationIDsBaseCase):
    pass


class TestSQLiteNonInterleavingTextIds(_TextIds, TestSQLiteNonInterleaving):
    pass


class TestPostgresRecorderContract(_PostgresRecorder, lib.ApplicationRecorderTestCase[Any]):
    pass


class TestPostgresRecorderContractTextIds(_TextIds, TestPostgresRecorderContract):
    pass


class TestPostgresNonInterleaving(_PostgresRecorder,
                                  lib.NonInterleavingNotificationIDsBaseCase):
    pass


class TestPostgresNonInterleavingTextIds(_TextIds, TestPostgresNonInterleaving):
    pass


def test_postgres_head_records_are_paged_with_text_ids() -> None:
    """The ledger's own walk of the head records starts below every id of the store's id
    type (it began at the nil UUID, which a text column cannot be compared with)."""
    url = new_schema_url()
    factory = LedgerPostgresFactory(Environment("aftersales", {
        **eventsourcing_env(url), "ORIGINATOR_ID_TYPE": "text"}))
    try:
        recorder = factory.application_recorder()
        ids = sorted(f"test-{uuid4()}" for _ in range(3))
        recorder.insert_events([StoredEvent(originator_id=i, originator_version=1,
                                            topic="topic", state=b"{}") for i in ids])
        first: list[tuple[Any, Any]] = recorder.heads_page(None, 2)
        assert [oid for oid, _ in first] == ids[:2]
        rest: list[tuple[Any, Any]] = recorder.heads_page(first[-1][0], 2)
        assert [(oid, head.version) for oid, head in rest] == [(ids[2], 1)]
    finally:
        factory.close()
        drop_schema(url)


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


# --- the infrastructure factories -----------------------------------------------------


def _password() -> str:
    """A `POSTGRES_GET_PASSWORD_TOPIC` (the test server trusts its clients)."""
    return ""


class _FactoryContract(_IdType):
    """eventsourcing's `InfrastructureFactoryTestCase` on a ledger factory, in an
    environment set up as the library's suite sets up its own factories' (named
    "TestCase", selecting the factory by its topic, nothing else but the store), with the
    store's settings read as the library's factory reads them: its suite checks those in
    its SQLite and PostgreSQL factory cases (tests/persistence_tests/test_sqlite.py and
    test_postgres.py of its repository, which its package does not ship), restated here.
    Every factory made is closed."""

    factory_topic: ClassVar[str]
    #: (settings added, an attribute of the factory, its value on the library's factory)
    library_reads: ClassVar[list[tuple[dict[str, str], str, Any]]]
    #: Settings the library's factory refuses, naming the setting.
    library_refuses: ClassVar[list[dict[str, str]]]
    #: Settings without which the library's factory refuses to be made.
    library_requires: ClassVar[list[str]]

    env: Environment
    factory: Any

    def store_env(self) -> dict[str, str]:
        raise NotImplementedError

    def setUp(self) -> None:
        self.env = Environment("TestCase", {"PERSISTENCE_MODULE": self.factory_topic,
                                            "ORIGINATOR_ID_TYPE": self.id_type,
                                            **self.store_env()})
        super().setUp()  # type: ignore[misc]

    def construct(self, *, without: str = "", **settings: str) -> Any:
        env = Environment(self.env.name, {**self.env, **settings})
        env.pop(without, None)
        factory = InfrastructureFactory.construct(env)
        self.addCleanup(factory.close)  # type: ignore[attr-defined]
        return factory

    def test_settings_are_read_as_the_library_reads_them(self) -> None:
        for settings, attribute, expected in self.library_reads:
            seen = attrgetter(attribute)(self.construct(**settings))
            assert seen == expected, (settings, attribute, seen, expected)

    def test_settings_are_refused_as_the_library_refuses_them(self) -> None:
        for settings in self.library_refuses:
            try:
                self.construct(**settings)
            except OSError as e:
                assert next(iter(settings)) in str(e), (settings, e)
            else:
                raise AssertionError(f"{settings} was not refused")

    def test_missing_settings_are_refused_as_the_library_refuses_them(self) -> None:
        for key in self.library_requires:
            try:
                self.construct(without=key)
            except OSError as e:
                assert key in str(e), (key, e)
            else:
                raise AssertionError(f"made without {key}")

    def test_originator_id_type(self) -> None:
        assert self.factory.datastore.originator_id_type == self.id_type
        assert self.construct(without="ORIGINATOR_ID_TYPE").datastore.originator_id_type \
            == "uuid"


class TestSQLiteFactoryContract(_FactoryContract,
                                lib.InfrastructureFactoryTestCase[LedgerSQLiteFactory]):
    factory_topic = SQLITE_TOPIC
    library_reads: ClassVar[list[tuple[dict[str, str], str, Any]]] = [
        # The library's pool keeps its lock timeout unset (None: sqlite3's default)
        # unless SQLITE_LOCK_TIMEOUT sets it.
        ({}, "datastore.pool.lock_timeout", None),
        ({"SQLITE_LOCK_TIMEOUT": ""}, "datastore.pool.lock_timeout", None),
        ({"SQLITE_LOCK_TIMEOUT": "10"}, "datastore.pool.lock_timeout", 10),
        ({}, "datastore.single_row_tracking", True),
        ({"SINGLE_ROW_TRACKING": "f"}, "datastore.single_row_tracking", False),
        ({"ORIGINATOR_ID_TYPE": "uuid"}, "datastore.originator_id_type", "uuid"),
        ({"ORIGINATOR_ID_TYPE": "text"}, "datastore.originator_id_type", "text"),
    ]
    library_refuses: ClassVar[list[dict[str, str]]] = [
        {"SQLITE_LOCK_TIMEOUT": "abc"}, {"ORIGINATOR_ID_TYPE": "int"}]
    library_requires: ClassVar[list[str]] = ["SQLITE_DBNAME"]

    class SQLiteTrackingRecorderSubclass(SQLiteTrackingRecorder):
        pass

    def store_env(self) -> dict[str, str]:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)  # after tearDown closes the factory
        return {"SQLITE_DBNAME": str(Path(tmp.name) / "factory.db")}

    def expected_factory_class(self) -> type[LedgerSQLiteFactory]:
        return LedgerSQLiteFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return SQLiteAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return SQLiteLedgerRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return SQLiteTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return self.SQLiteTrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return SQLiteProcessRecorder

    def test_connections_keep_the_ledgers_busy_timeout(self) -> None:
        """What the library reads is its own; a connection still waits for another
        process's lock as long as the ledger says (LEDGER_LOCK_TIMEOUT, which the ledger
        always sets: `aftersales.settings`), else the library's setting, else 5 s."""
        for settings, wait, millis in (
                ({}, None, 5000), ({"SQLITE_LOCK_TIMEOUT": "10"}, 10, 10000),
                ({"LEDGER_LOCK_TIMEOUT": "0.5"}, 0.5, 500),
                ({"LEDGER_LOCK_TIMEOUT": "12", "SQLITE_LOCK_TIMEOUT": "3"}, 12, 12000)):
            factory = self.construct(**settings)
            with factory.datastore.transaction(commit=False) as c:
                c.execute("PRAGMA busy_timeout")
                busy = c.fetchone()[0]
            # (the pool's lock timeout is the wait the webhook inbox gives its writes)
            assert (factory.datastore.pool.lock_timeout, busy) == (wait, millis), settings


class TestSQLiteFactoryContractTextIds(_TextIds, TestSQLiteFactoryContract):
    pass


class TestPostgresFactoryContract(_FactoryContract,
                                  lib.InfrastructureFactoryTestCase[LedgerPostgresFactory]):
    factory_topic = POSTGRES_TOPIC
    library_reads: ClassVar[list[tuple[dict[str, str], str, Any]]] = [
        ({}, "datastore.pool.max_lifetime", 3600.0),
        ({"POSTGRES_CONN_MAX_AGE": ""}, "datastore.pool.max_lifetime", 3600.0),
        ({"POSTGRES_CONN_MAX_AGE": "0"}, "datastore.pool.max_lifetime", 0),
        ({}, "datastore.pool.min_size", 5),
        ({"POSTGRES_POOL_SIZE": ""}, "datastore.pool.min_size", 5),
        ({"POSTGRES_POOL_SIZE": "6"}, "datastore.pool.min_size", 6),
        ({}, "datastore.pool.max_size", 15),
        ({"POSTGRES_MAX_OVERFLOW": ""}, "datastore.pool.max_size", 15),
        ({"POSTGRES_MAX_OVERFLOW": "7"}, "datastore.pool.max_size", 12),
        ({}, "datastore.pool.timeout", 30),
        ({"POSTGRES_CONNECT_TIMEOUT": ""}, "datastore.pool.timeout", 30),
        ({"POSTGRES_CONNECT_TIMEOUT": "8"}, "datastore.pool.timeout", 8),
        ({}, "datastore.pool.max_waiting", 0),
        ({"POSTGRES_MAX_WAITING": ""}, "datastore.pool.max_waiting", 0),
        ({"POSTGRES_MAX_WAITING": "8"}, "datastore.pool.max_waiting", 8),
        # (the ledger's own lock timeout is LEDGER_LOCK_TIMEOUT, on its connections)
        ({}, "datastore.lock_timeout", 0),
        ({"POSTGRES_LOCK_TIMEOUT": ""}, "datastore.lock_timeout", 0),
        ({"POSTGRES_LOCK_TIMEOUT": "1"}, "datastore.lock_timeout", 1),
        ({}, "datastore.idle_in_transaction_session_timeout", 5),
        ({"POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": ""},
         "datastore.idle_in_transaction_session_timeout", 5),
        ({"POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10"},
         "datastore.idle_in_transaction_session_timeout", 10),
        ({}, "datastore.pre_ping", False),
        ({"POSTGRES_PRE_PING": "off"}, "datastore.pre_ping", False),
        ({"POSTGRES_PRE_PING": "on"}, "datastore.pre_ping", True),
        ({}, "datastore.pool.get_password_func", None),
        ({"POSTGRES_GET_PASSWORD_TOPIC": get_topic(_password)},
         "datastore.pool.get_password_func", _password),
        ({}, "datastore.single_row_tracking", True),
        ({"SINGLE_ROW_TRACKING": "f"}, "datastore.single_row_tracking", False),
        ({"ORIGINATOR_ID_TYPE": "uuid"}, "datastore.originator_id_type", "uuid"),
        ({"ORIGINATOR_ID_TYPE": "text"}, "datastore.originator_id_type", "text"),
        ({}, "datastore.enable_db_functions", False),
        ({"POSTGRES_ENABLE_DB_FUNCTIONS": "t"}, "datastore.enable_db_functions", True),
        ({"POSTGRES_SCHEMA": ""}, "datastore.schema", "public"),
        ({"POSTGRES_SCHEMA": " "}, "datastore.schema", "public"),
    ]
    library_refuses: ClassVar[list[dict[str, str]]] = [
        {f"POSTGRES_{name}": "abc"} for name in (
            "CONN_MAX_AGE", "CONNECT_TIMEOUT", "MAX_WAITING", "LOCK_TIMEOUT", "POOL_SIZE",
            "MAX_OVERFLOW", "IDLE_IN_TRANSACTION_SESSION_TIMEOUT")
    ] + [{"ORIGINATOR_ID_TYPE": "integer"}]
    library_requires: ClassVar[list[str]] = [
        "POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_USER", "POSTGRES_PASSWORD"]

    class PostgresTrackingRecorderSubclass(PostgresTrackingRecorder):
        pass

    def store_env(self) -> dict[str, str]:
        """The server and a schema of the test's own (made here: the library's recorders
        do not create their schema), dropped after; none of the ledger's settings."""
        url = new_schema_url()  # fails in CI when there is no server
        schema = str(make_url(url).query["schema"])
        with psycopg.connect(_conninfo(make_url(PG_URL).database or ""),
                             autocommit=True) as c:
            c.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        self.addCleanup(drop_schema, url)  # after tearDown closes the factory
        return {k: v for k, v in eventsourcing_env(url).items()
                if k in ("POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER",
                         "POSTGRES_PASSWORD", "POSTGRES_SCHEMA")}

    def expected_factory_class(self) -> type[LedgerPostgresFactory]:
        return LedgerPostgresFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return PostgresAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return PostgresLedgerRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return PostgresTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return self.PostgresTrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return PostgresProcessRecorder

    def test_close(self) -> None:
        factory = self.construct()
        with factory.datastore.get_connection() as conn:
            conn.execute("SELECT 1")
        assert not factory.datastore.pool.closed
        factory.close()
        assert factory.datastore.pool.closed

    def test_every_table_is_made_in_the_schema(self) -> None:
        """Each recorder's tables and indexes (the ledger's too) are the schema's, named
        after the environment, as the library's factory names its own."""
        schema = self.factory.datastore.schema
        assert schema == self.env["POSTGRES_SCHEMA"] != "public"
        recorders = [self.factory.application_recorder(),
                     self.factory.aggregate_recorder("events"),
                     self.factory.aggregate_recorder("snapshots"),
                     self.factory.process_recorder(), self.factory.tracking_recorder()]
        assert [getattr(r, "events_table_name", None) for r in recorders] == [
            "testcase_events", "testcase_events", "testcase_snapshots", "testcase_events",
            None]
        assert recorders[-1].tracking_table_name == "testcase_tracking"
        for recorder in recorders:
            for statement in recorder.sql_create_statements:
                text = statement.as_string()
                if "CREATE " in text:
                    assert f'"{schema}".' in text, text


class TestPostgresFactoryContractTextIds(_TextIds, TestPostgresFactoryContract):
    pass


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
