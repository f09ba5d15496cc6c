"""UDP: one datagram is one message (RFC 3261 §18.1.1, §18.2.1)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable

from ..actions import Drop, MessageHandler, Send, Source
from ..sip.errors import MessageTooLarge, ServerInternalError
from .config import TransportConfig
from .ratelimit import RateLimitedLog

logger = logging.getLogger(__name__)


def bind_udp(host: str, port: int, config: TransportConfig) -> socket.socket:
    """A UDP socket bound with SO_REUSEPORT, so that several members can share the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, config.receive_buffer)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class UdpServer(asyncio.DatagramProtocol):
    """Feeds each datagram to ``handler`` and passes what it returns to ``dispatch``.

    One catch-all per datagram.  :meth:`send` is the UDP side of the member's
    sender: a direct ``sendto`` on ``sock`` (the bound socket the loop reads):
    uvloop's ``DatagramTransport.sendto`` converts the address on every call,
    which cost a fifth of the CPU of a stateless answer (py-spy under SIPp
    load).  When the socket buffer is full the transport queues.
    """

    def __init__(
        self,
        handler: MessageHandler,
        config: TransportConfig,
        counters: dict[str, int],
        sock: socket.socket,
        dispatch: Callable[[list[Send]], None],
    ):
        self._sendto = sock.sendto
        self._receive = handler.receive
        self._refuse = handler.refuse
        self._dispatch = dispatch
        self._config = config
        self._counters = counters
        self._transport: asyncio.DatagramTransport | None = None
        self._drops = RateLimitedLog(logger)
        self._debug = logger.isEnabledFor(logging.DEBUG)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's classes
        self._transport = transport  # type: ignore[assignment,unused-ignore]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            if self._debug:
                logger.debug("< udp %s:%d %r", addr[0], addr[1], data)
            if data[:1] in b"\r\n" and not data.strip(b"\r\n"):
                return  # RFC 5626 §3.5.1 keep-alive: nothing to answer on UDP
            source = Source("UDP", addr[0], addr[1])
            if len(data) > self._config.max_message_size:
                self._counters["udp_too_large"] = self._counters.get("udp_too_large", 0) + 1
                outcome = self._refuse(data, MessageTooLarge(), source)
            else:
                outcome = self._receive(data, source, time.time())
            if type(outcome) is list:
                if len(outcome) == 1 and outcome[0][1] == "UDP":  # the common case, inline
                    self.send(outcome[0][0], outcome[0][2])
                elif outcome:
                    self._dispatch(outcome)
            elif isinstance(outcome, Drop) and outcome.reason == "garbage":
                self._drops.warning(
                    "udp garbage from %s:%d dropped (%s): %r",
                    addr[0],
                    addr[1],
                    outcome.detail,
                    data[:120],
                )
        except Exception:
            self._counters["udp_errors"] = self._counters.get("udp_errors", 0) + 1
            logger.exception("udp datagram from %s:%d failed: %r", addr[0], addr[1], data[:200])
            self._failed(data, Source("UDP", addr[0], addr[1]))

    def _failed(self, data: bytes, source: Source) -> None:
        """A request we failed on gets 500 (STYLE §4): the phone hears, and stops."""
        try:
            outcome = self._refuse(data, ServerInternalError(), source)
            if type(outcome) is list and outcome:
                self._dispatch(outcome)
        except Exception:
            logger.exception("no 500 either for the datagram from %s:%d", *source[1:])

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        """Send one datagram now, or queue it on the transport when the socket is full."""
        if self._debug:
            logger.debug("> udp %s:%d %r", address[0], address[1], data)
        try:
            self._sendto(data, address)
        except (BlockingIOError, InterruptedError):
            assert self._transport is not None
            self._transport.sendto(data, address)
        except OSError as exc:  # unreachable network, bad address in a Via …
            self._counters["udp_send_errors"] = self._counters.get("udp_send_errors", 0) + 1
            self._drops.warning("udp send to %s:%d failed: %s", address[0], address[1], exc)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the peer is gone; the transactions time out.
        logger.debug("udp error: %s", exc)
