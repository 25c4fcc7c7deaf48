"""Intake through NATS JetStream: the stream, its subjects and the partitions' consumers.

One stream (`AFTERSALES` unless --stream names another) holds every line to be decided: a
ledger command line, or a platform's push body as received.  Partition K's lines are on
subject `aftersales.K`: the stream's name in small letters, then K (a stream `S1`'s are
`s1.K`; two streams whose names differ only in case would share them, and the second
is refused by the server).  The publisher computes K with the
shard function: the nats-server 2.9 this project runs has no subject mapping a client can
set.  The stream is a work queue: a message stays until its partition's worker
acknowledges it, which it does only once the ledger transaction that decided it has
committed; then it is gone.

Each message carries `Nats-Msg-Id` (the command id, or the platform's msg_id; with `@K`
where one body goes to several partitions), so the stream drops a message published
twice within `DUPLICATE_WINDOW`; after that, the ledger's own command ids and message keys
make a second copy change nothing.  `Aftersales-Partitions` says how many partitions the
publisher's map had: a worker of another map refuses the message rather than deciding
part of it.

Each partition has one durable pull consumer, `aftersales-K` (`s1-K`), filtered on its
subject.
A worker takes its partition's applier lock first (one worker per partition), then makes
the consumer afresh: everything not yet acknowledged (what a crashed worker held) is
delivered again at once, in the subject's order.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aftersales.errors import SettingsError

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.client import JetStreamContext

#: The stream's default name.
STREAM = "AFTERSALES"
#: How long the stream remembers a Nats-Msg-Id to drop a copy published again (the
#: server keeps every id of the window in memory: at 10^4 messages a second, 10 minutes
#: are 6 million ids).
DUPLICATE_WINDOW = timedelta(minutes=10)
#: Headers of a published message besides Nats-Msg-Id.
PARTITIONS_HEADER = "Aftersales-Partitions"
LINE_HEADER = "Aftersales-Line"
#: Messages a worker may hold unacknowledged: what its lateness window holds (live pushes
#: are held for the lateness: at 600 s, this bounds a partition at about 1,600 pushes a
#: second), and a batch being recorded.
MAX_ACK_PENDING = 1_000_000


@dataclass(frozen=True)
class Target:
    """Where intake goes: the NATS server(s) and the stream."""

    servers: tuple[str, ...]
    stream: str = STREAM

    def subject(self, partition: int) -> str:
        return f"{self.stream.lower()}.{partition}"

    def durable(self, partition: int) -> str:
        return f"{self.stream.lower()}-{partition}"

    @classmethod
    def of(cls, url: str, stream: str = STREAM) -> Target:
        servers = tuple(u.strip() for u in url.split(",") if u.strip())
        if not servers or not all(u.startswith(("nats://", "tls://")) for u in servers):
            raise SettingsError(f"--nats {url!r}: expected nats://HOST:PORT (several: "
                                "separated by commas)")
        return cls(servers, stream)


async def connect(target: Target, name: str, **options: Any) -> Client:
    """A connection to the servers (reconnecting while it runs: the client waits for a
    server that restarts)."""
    import nats  # (loaded for the intake commands only)
    from nats.errors import NoServersError
    try:
        return await nats.connect(servers=list(target.servers), name=name,
                                  connect_timeout=5, max_reconnect_attempts=-1,
                                  allow_reconnect=True, **options)
    except (NoServersError, OSError) as e:
        raise ConnectionError(f"NATS at {', '.join(target.servers)} cannot be reached: "
                              f"{e or type(e).__name__}") from None


async def ensure_stream(js: JetStreamContext, target: Target) -> None:
    """The stream, made if it is not there (a stream of that name with other subjects or
    another retention is refused: it is not this ledger's)."""
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError
    wanted = [f"{target.stream.lower()}.*"]
    try:
        info = await js.stream_info(target.stream)
    except NotFoundError:
        await js.add_stream(StreamConfig(
            name=target.stream, subjects=wanted, retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW.total_seconds()))
        return
    found = info.config
    if list(found.subjects or []) != wanted or found.retention != RetentionPolicy.WORK_QUEUE:
        raise SettingsError(f"the NATS stream {target.stream} holds subjects "
                            f"{found.subjects} ({found.retention}): not an aftersales "
                            f"stream (subjects {wanted}, a work queue); give --stream NAME")
    losing = [f"{name} {value}" for name, value in (
        ("storage", found.storage), ("max_age", found.max_age), ("max_msgs", found.max_msgs),
        ("max_bytes", found.max_bytes), ("max_msgs_per_subject", found.max_msgs_per_subject))
        if (value != StorageType.FILE if name == "storage" else value not in (None, 0, -1))]
    if losing:  # a message acknowledged to its sender could go before its worker took it
        raise SettingsError(f"the NATS stream {target.stream} may drop messages before "
                            f"they are decided ({', '.join(losing)}): an aftersales stream "
                            "keeps every message on disk until its worker acknowledges it; "
                            "remove the limits (or give --stream NAME for a new stream)")


async def fresh_consumer(js: JetStreamContext, target: Target, partition: int,
                         ack_wait: timedelta) -> Any:
    """Partition K's pull subscription, its durable consumer made afresh (see above)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(target.stream, target.durable(partition))
    config = ConsumerConfig(
        durable_name=target.durable(partition), filter_subject=target.subject(partition),
        ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait.total_seconds(), max_ack_pending=MAX_ACK_PENDING,
        max_deliver=-1)
    return await js.pull_subscribe(target.subject(partition), durable=target.durable(partition),
                                   stream=target.stream, config=config)
