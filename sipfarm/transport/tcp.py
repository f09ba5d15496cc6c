"""TCP: a stream framed by Content-Length (RFC 3261 §18.3).

Connections are kept by peer address: a response goes back on the connection
its request came in on (§18.2.2), a request to a contact registered over TCP
reuses the contact's connection (RFC 5626 §5.3), and a request to a TCP peer
with no connection opens one (§18.1.1); a failed connect is reported back so
that the transaction ends with a transport error (§17.1.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable

from ..actions import Drop, MessageHandler, Send, Source
from ..sip.errors import SipError
from ..sip.framer import StreamFramer
from .config import TransportConfig
from .ratelimit import RateLimitedLog

logger = logging.getLogger(__name__)


class TcpServer:
    """Accepts connections and runs one :class:`TcpConnection` each; enforces the limits."""

    def __init__(
        self,
        handler: MessageHandler,
        config: TransportConfig,
        counters: dict[str, int],
        dispatch: Callable[[list[Send]], None],
    ):
        self.handler = handler
        self.config = config
        self.counters = counters
        self.dispatch = dispatch
        self.per_source: dict[str, int] = {}
        self.connections: set[TcpConnection] = set()
        self.by_peer: dict[tuple[str, int], TcpConnection] = {}
        self._connecting: dict[tuple[str, int], list[tuple[bytes, Callable[[], None]]]] = {}
        self.drops = RateLimitedLog(logger)
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._server = await loop.create_server(
            lambda: TcpConnection(self),
            host,
            port,
            family=family,
            reuse_address=True,
            reuse_port=True,
            backlog=1024,
        )
        self._sweep()

    def _sweep(self) -> None:
        """Close connections idle for longer than the limit (one timer for all of them)."""
        now = time.monotonic()
        for conn in list(self.connections):
            if now - conn.last_activity > self.config.idle_timeout:
                self.count("tcp_idle_closed")
                conn.close("idle")
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(min(self.config.idle_timeout, 5.0), self._sweep)

    def send(self, data: bytes, address: tuple[str, int], failed: Callable[[], None]) -> None:
        """Write ``data`` on the connection with ``address``; connect first when there is none.

        ``failed`` is called (later) when the connection cannot be made.
        """
        conn = self.by_peer.get(address)
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.write(data)
            return
        waiting = self._connecting.get(address)
        if waiting is not None:
            waiting.append((data, failed))
            return
        self._connecting[address] = [(data, failed)]
        asyncio.get_running_loop().create_task(self._connect(address))

    async def _connect(self, address: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: TcpConnection(self, outbound=True), address[0], address[1]
                ),
                timeout=self.config.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            self.count("tcp_connect_failed")
            self.drops.warning("tcp connect to %s:%d failed: %s", address[0], address[1], exc)
            for _, failed in self._connecting.pop(address, []):
                failed()
            return
        conn = self.by_peer.get(address)
        for data, failed in self._connecting.pop(address, []):
            if conn is None:
                failed()
            else:
                conn.write(data)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close("shutdown")
        if self._server is not None:
            await self._server.wait_closed()


class TcpConnection(asyncio.Protocol):
    """One accepted connection; one catch-all around everything it receives."""

    def __init__(self, server: TcpServer, *, outbound: bool = False):
        self.server = server
        self.outbound = outbound  # we opened it (to a callee): the per-source limit is for others
        self.framer = StreamFramer(server.config.max_message_size, server.config.max_header_size)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.garbage = 0
        self.last_activity = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        srv = self.server
        srv.by_peer[self.peer] = self
        n = srv.per_source.get(self.peer[0], 0) + 1
        srv.per_source[self.peer[0]] = n
        srv.connections.add(self)
        if n > srv.config.max_connections_per_source and not self.outbound:
            srv.count("tcp_refused_per_source")
            srv.drops.warning(
                "tcp %s:%d refused: more than %d connections from it",
                self.peer[0],
                self.peer[1],
                srv.config.max_connections_per_source,
            )
            self.close("per-source limit")
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        logger.debug("tcp %s:%d connected", *self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        srv = self.server
        self.transport = None  # transport <-> protocol is a cycle: break it
        if srv.by_peer.get(self.peer) is self:
            del srv.by_peer[self.peer]
        if self in srv.connections:
            srv.connections.discard(self)
            left = srv.per_source.get(self.peer[0], 1) - 1
            if left > 0:
                srv.per_source[self.peer[0]] = left
            else:
                srv.per_source.pop(self.peer[0], None)
        logger.debug("tcp %s:%d closed", *self.peer)

    def close(self, why: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            logger.debug("tcp %s:%d closing: %s", self.peer[0], self.peer[1], why)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        srv = self.server
        transport = self.transport
        assert transport is not None
        if transport.is_closing():
            return
        source = Source("TCP", self.peer[0], self.peer[1])
        try:
            try:
                messages = self.framer.feed(data)
            except SipError as exc:
                # The stream is out of step: answer the message that broke it if its
                # head survives (RFC 3261 §18.3), then close.
                srv.count("tcp_framing_errors")
                outcome = srv.handler.refuse(self.framer.broken_head, exc, source)
                if type(outcome) is list:
                    for send in outcome:
                        self.write(send.data)
                srv.drops.warning(
                    "tcp %s:%d framing error (%s), closing", self.peer[0], self.peer[1], exc.reason
                )
                self.close("framing error")
                return
            for message in messages:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("< tcp %s:%d %r", self.peer[0], self.peer[1], message)
                outcome = srv.handler.receive(message, source, time.time())
                if type(outcome) is list:
                    if outcome:
                        srv.dispatch(outcome)
                        if outcome[0].data[8:11] == b"400" and outcome[0].address == self.peer:
                            self._spend_garbage()
                elif isinstance(outcome, Drop) and outcome.reason == "garbage":
                    self._spend_garbage()
                if transport.is_closing():
                    return
        except Exception:
            srv.count("tcp_errors")
            logger.exception("tcp %s:%d failed on %r", self.peer[0], self.peer[1], data[:200])
            self.close("internal error")

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("> tcp %s:%d %r", self.peer[0], self.peer[1], data)
        self.last_activity = time.monotonic()
        self.transport.write(data)

    def _spend_garbage(self) -> None:
        self.garbage += 1
        if self.garbage > self.server.config.garbage_budget:
            self.server.count("tcp_garbage_closed")
            self.server.drops.warning(
                "tcp %s:%d sent more than %d broken messages, closing",
                self.peer[0],
                self.peer[1],
                self.server.config.garbage_budget,
            )
            self.close("garbage budget spent")
