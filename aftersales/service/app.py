"""The webhook as an ASGI app (Starlette): push bodies in, health and metrics out.

`POST` (any path but the three below): a Douyin push.  Answers, each a JSON object:
200 `{"code": 0, "msg": "success"}` once the body is committed to the store's inbox (a
body received before is answered so too, and kept once); 401 `{"code": 40041}` for a
missing or wrong `event-sign`; 400 `{"code": 40000}` for a body that is not push messages
or a Content-Length that is not a number; 413 for a body over 1 MiB (refused from its
Content-Length, before it is read); 408 for a body not received whole within the body
timeout; 503 `{"code": 50300}` when the store cannot take the body (nothing is kept:
the platform sends it again) or the applier has stopped.

`GET /healthz`: 200 while the process serves.  `GET /readyz`: 200 when the store answers
and the oldest unapplied body has waited no longer than the lateness window and
`max_lag`; 503 with the reason otherwise (with --nats: 200 while connected to NATS).
`GET /metrics`: Prometheus text format.

With --nats, a body is published to the NATS stream instead (`aftersales.feeds.publish`)
and answered success once the stream acknowledged it; 503 while NATS cannot take it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aftersales.application.ledger import Ledger
from aftersales.errors import CommandRefused
from aftersales.feeds.publish import StreamIntake, TooLarge
from aftersales.feeds.pushes import MAX_BODY, ZONE, read_body
from aftersales.feeds.webhook import Applier, sign
from aftersales.service.metrics import WebhookMetrics
from aftersales.storage.port import InboxStats
from aftersales.storage.retry import describe as store_error
from aftersales.storage.retry import is_store_error, may_pass

SUCCESS = {"code": 0, "msg": "success"}


@dataclass
class Settings:
    key: str
    secret: str
    lateness: timedelta
    max_lag: float  # seconds beyond the lateness window before /readyz says 503
    body_timeout: float
    clock: Callable[[], datetime]
    ack: Callable[[str], None]  # `ack received N` lines (stdout, with --ack)


def create_app(ledger: Ledger | None, applier: Applier | None, settings: Settings,
               metrics: WebhookMetrics, log: logging.Logger,
               intake: StreamIntake | None = None) -> Starlette:
    """The app; the store's inbox is written through `ledger` (from the server's thread
    pool), applied by `applier`; or, with `intake` (`--nats`), each body is published to
    the NATS stream, for the partitions' workers."""
    s = settings

    def answer(request: Request, status: int, doc: dict[str, Any]) -> JSONResponse:
        path = request.url.path if request.url.path in PATHS else "push"
        metrics.responses.labels(str(status), path).inc()
        return JSONResponse(doc, status)

    async def push(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and not length.strip().isdigit():
            return answer(request, 400, {"code": 40000, "msg": "Content-Length is not a "
                                         "number"})
        if length is not None and int(length) > MAX_BODY:
            return answer(request, 413, {"code": 41300, "msg": "body too large"})
        try:
            body = await _read(request, s.body_timeout)
        except TimeoutError:
            log.info("a body was not received in time", extra={"fields": {
                "client": _client(request), "seconds": s.body_timeout}})
            return answer(request, 408, {"code": 40800, "msg": "body not received in time"})
        except ClientDisconnect:
            log.info("a client went away before its body was read", extra={"fields": {
                "client": _client(request)}})
            return answer(request, 400, {"code": 40000, "msg": "client went away"})
        if body is None:
            return answer(request, 413, {"code": 41300, "msg": "body too large"})
        given = request.headers.get("event-sign", "").strip().lower()
        if not given or not hmac.compare_digest(
                given.encode("utf-8", "replace"), sign(s.key, body, s.secret).encode()):
            return answer(request, 401, {"code": 40041, "msg": "missing or wrong event-sign"})
        try:
            messages = len(read_body(body.decode("utf-8"), kept=False).messages)
        except (CommandRefused, UnicodeDecodeError) as e:
            return answer(request, 400, {"code": 40000, "msg": f"not push messages: {e}"})
        if applier is not None and applier.progress.failed is not None:
            return answer(request, 503, {"code": 50300, "msg": "the ledger is not applying"})
        received_at = s.clock().astimezone(ZONE)
        try:
            seq, new = (await run_in_threadpool(keep, body, received_at) if intake is None
                        else await intake.keep(body, received_at))
        except Exception as e:
            if isinstance(e, TooLarge):  # never, however often sent: said, not 503
                log.warning("a body is too large for the stream", extra={"fields": {
                    "reason": str(e), "bytes": len(body)}})
                return answer(request, 413, {"code": 41300, "msg": str(e)})
            if intake is not None and _nats_failed(e):
                metrics.retries.labels("inbox").inc()
                log.warning("a body could not be published: answered 503", extra={
                    "fields": {"reason": str(e) or type(e).__name__, "bytes": len(body)}})
                return answer(request, 503, {"code": 50300, "msg": "the stream cannot take "
                                             "the body now; send it again"})
            if not is_store_error(e):
                raise
            metrics.retries.labels("inbox").inc()
            log.warning("a body could not be kept: answered 503", extra={"fields": {
                "reason": store_error(e), "bytes": len(body)}})
            return answer(request, 503, {"code": 50300, "msg": "the store cannot take the "
                                         "body now; send it again"})
        metrics.bodies.labels("new" if new else "again").inc()
        if new:
            metrics.messages.inc(messages)
        log.debug("body received", extra={"fields": {
            "seq": seq, "new": new, "messages": messages, "bytes": len(body)}})
        s.ack(f"ack received {seq}")
        if applier is not None:
            applier.wake.set()
        return answer(request, 200, SUCCESS)

    def keep(body: bytes, received_at: datetime) -> tuple[int, bool]:
        """Commit the body to the inbox; a failure that may pass (a pooled connection the
        server closed while it was down) is tried once more, on another connection."""
        assert ledger is not None
        try:
            return ledger.index.inbox_add(body, received_at)
        except Exception as e:
            if not (is_store_error(e) and may_pass(e)):
                raise
            metrics.retries.labels("inbox").inc()
            return ledger.index.inbox_add(body, received_at)

    async def healthz(request: Request) -> Response:
        return answer(request, 200, {"status": "alive"})

    async def readyz(request: Request) -> Response:
        if intake is not None:  # the workers' lag: `db check --json`, per partition
            ready = await intake.ready()
            return answer(request, 200 if ready else 503, {"ready": ready, **(
                {} if ready else {"reason": "NATS cannot be reached"})})
        if ledger is None or applier is None or applier.progress.failed is not None:
            return answer(request, 503, {"ready": False, "reason": "the applier stopped"})
        try:
            stats = await asyncio.wait_for(run_in_threadpool(ledger.index.inbox_stats),
                                           timeout=5.0)
        except TimeoutError:
            return answer(request, 503, {"ready": False, "reason": "the store did not "
                                         "answer within 5 s"})
        except Exception as e:
            if not is_store_error(e):
                raise
            return answer(request, 503, {"ready": False,
                                         "reason": f"the store failed: {store_error(e)}"})
        age = _age(stats, s.clock())
        metrics.inbox(stats, age, s.lateness.total_seconds())
        lag = max(0.0, age - s.lateness.total_seconds())
        doc: dict[str, object] = {"ready": lag <= s.max_lag, "backlog": stats.backlog,
               "oldest_unapplied_seconds": round(age, 3), "lag_seconds": round(lag, 3),
               "max_lag_seconds": s.max_lag, "applying": applier.progress.active}
        if lag > s.max_lag:
            doc["reason"] = (f"the oldest unapplied body has waited {lag:.0f} s beyond the "
                             f"lateness window (bound {s.max_lag:.0f} s)")
            return answer(request, 503, doc)
        return answer(request, 200, doc)

    async def scrape(request: Request) -> Response:
        if ledger is None or applier is None:
            metrics.responses.labels("200", "/metrics").inc()
            return Response(generate_latest(metrics.registry), 200,
                            media_type=CONTENT_TYPE_LATEST)
        try:
            stats = await asyncio.wait_for(run_in_threadpool(ledger.index.inbox_stats),
                                           timeout=5.0)
            metrics.inbox(stats, _age(stats, s.clock()), s.lateness.total_seconds())
        except Exception as e:  # the figures stay as last read; the rest is served
            if not (is_store_error(e) or isinstance(e, TimeoutError)):
                raise
        metrics.active.set(1 if applier.progress.active else 0)
        metrics.responses.labels("200", "/metrics").inc()
        return Response(generate_latest(metrics.registry), 200,
                        media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", scrape, methods=["GET", "HEAD"]),
        Route("/{path:path}", push, methods=["POST"]),
    ])


PATHS = ("/healthz", "/readyz", "/metrics")


async def _read(request: Request, timeout: float) -> bytes | None:
    """The whole body within `timeout` seconds; None once it passes MAX_BODY (a body
    sent without a Content-Length, chunked)."""
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


def _nats_failed(error: Exception) -> bool:
    from nats.errors import Error as NatsError
    return isinstance(error, NatsError | ConnectionError | TimeoutError)


def _age(stats: InboxStats, now: datetime) -> float:
    if stats.oldest_unapplied is None:
        return 0.0
    return max(0.0, (now - stats.oldest_unapplied).total_seconds())


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"
