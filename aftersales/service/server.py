"""The webhook's HTTP server: uvicorn (HTTP/1.1 with keep-alive, a listen backlog of
2,048, a cap on connections served at once, graceful shutdown on SIGTERM and Ctrl-C),
with one limit uvicorn lacks: a connection that sends no complete request head within
`header_timeout` seconds is closed (uvicorn waits for a first request, and for a request
head begun after a kept-alive one, without end: idle and slow clients would hold sockets
for ever)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

#: The listen backlog (the standard library's server had 5: connections were reset at
#: 32-64 clients).
BACKLOG = 2048
#: The longest request head (request line and headers) read; a longer one is refused.
MAX_HEAD = 16 * 1024


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head does not arrive
    in time: timed from the connection's opening, and again from each answer."""

    header_timeout = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(None)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm(self.cycle)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm(self, answered: object) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.header_timeout, self._no_head,
                                                answered)

    def _no_head(self, answered: object) -> None:
        """No request head came after `answered` (None: since the connection opened)."""
        if self.cycle is answered and not self.transport.is_closing():
            self.transport.close()


def listen(host: str, port: int) -> socket.socket:
    """The listening socket (bound before the server starts, so that a port taken or
    not allowed is said at once, and port 0 tells the port chosen)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on such sockets' connections, and
    # uvicorn writes an answer's head and body apart; without it each answer after the
    # first on a kept-alive connection waited ~40 ms for the client's delayed ACK
    # (docs/performance.md, serve-webhook under load).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def server(app: Any, *, max_connections: int, header_timeout: float, keep_alive: float,
           graceful: float = 30.0) -> uvicorn.Server:
    """The server (run it with `server.run(sockets=[listen(...)])`)."""
    protocol = type("Protocol", (HeadTimeoutProtocol,), {"header_timeout": header_timeout})
    config = uvicorn.Config(
        app, http=protocol, lifespan="off", log_config=None, access_log=False,
        limit_concurrency=max_connections, backlog=BACKLOG,
        timeout_keep_alive=max(1, round(keep_alive)), timeout_graceful_shutdown=int(graceful),
        h11_max_incomplete_event_size=MAX_HEAD, server_header=False)
    return uvicorn.Server(config)
