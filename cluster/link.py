"""The cluster link: one persistent connection per pair of members (asyncio edge).

DESIGN.md "Cluster": relayed packets and member-to-member calls travel as
:mod:`cluster.frames` over TCP on the inner network.  Rules of this edge:

- **One connection per pair.** The member whose token sorts first connects; the
  other only accepts.  Both can then send on it.
- **Local when it can be.** Each member also listens on an abstract Unix socket
  named after its cluster address (``sipfarm-link:HOST:PORT``), and the dialler
  tries it first: members of one host in one network namespace (``sipfarm up``)
  then link without the TCP stack, some 40 % less CPU per frame on both sides
  (a relay is one write and one read).  Abstract names are per network
  namespace, so a member elsewhere (another host, another namespace: the farm
  tests' members behind their veths) is not found there and is dialled over TCP,
  and cutting its network cuts its link.  The Hello checks who answered.
- **Handshake.** Each side's first frame is a ``Hello`` with its token and the
  protocol versions it speaks; with no version in common, or a second
  ``Hello``, or anything that is not a frame, the connection is closed.
- **Reconnect.** A link this member opened is re-opened after a loss, with
  exponential backoff (50 ms doubling to 2 s), for as long as the peer is wanted
  (:meth:`Links.want`, :meth:`Links.forget`: the membership view says so).  A
  view that names the peer again (it restarted and registered) cuts the backoff
  short: a restarted member receives its flows' packets from its first moment
  on, and each one it cannot relay for want of a link goes a worse way.
- **Silence.** On protocol version 2 each side sends a :class:`~cluster.frames.Ping`
  every KEEPALIVE seconds; a link on which nothing arrived for SILENT seconds is
  *silent* (:meth:`Links.silent`): its peer is frozen, cut off or stuck, though
  TCP holds the connection (no FIN, no RST) until the peer's lease ends, 2 s or
  more.  The link stays open and speaks again with the peer's next frame; what
  to do meanwhile is the caller's choice (the farm sends what any member may
  serve, answers and in-dialog requests, to another member rather than into a
  black hole).
- **No unbounded queues.** :meth:`Links.send` returns False when the link is
  down or its write buffer is full; the caller decides (a relayed SIP packet is
  then dropped and counted: the sender's retransmission comes again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from typing import Protocol

from .frames import (
    PING_VERSION,
    PROTOCOL_VERSIONS,
    Frame,
    FrameError,
    FrameReader,
    Hello,
    Ping,
    common_version,
    encode,
)

logger = logging.getLogger(__name__)

__all__ = ["FrameHandler", "Links"]

#: Bytes a link may hold unsent before send() refuses more.
WRITE_LIMIT = 4 * 1024 * 1024
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
#: Seconds between two Pings on a link (protocol version 2 on).
KEEPALIVE = 0.1
#: Seconds without a frame after which a link is silent (several Pings missed: the
#: peer's loop has not run for that long).  Well under the lease (2 s), well over
#: what a busy member's loop takes for one pass.
SILENT = 0.6
_PING = encode(Ping())
#: Whether links may be local (abstract Unix sockets are Linux's).
LOCAL = sys.platform == "linux"
#: How long the dialler waits for a local listener before it tries TCP.
LOCAL_TIMEOUT = 0.5


def local_name(address: tuple[str, int]) -> str:
    """The abstract Unix socket name of the member whose cluster address is ``address``."""
    return f"\0sipfarm-link:{address[0]}:{address[1]}"


class FrameHandler(Protocol):
    """Where a link delivers what its peer sent (after the handshake)."""

    def frame_received(self, peer: str, frame: Frame) -> None: ...


class _Connection(asyncio.Protocol):
    """One connection of the link (TCP or local); learns its peer from the peer's Hello."""

    def __init__(self, links: Links, expected: str | None) -> None:
        self.links = links
        self.expected = expected  # the peer we dialled, or None for an accepted one
        self.peer: str | None = None
        self.version: int | None = None
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []  # frames of this loop pass, written by _flush
        self._queued = 0
        self.heard = time.monotonic()  # when the peer's last bytes arrived
        self.said = 0.0  # when this side last wrote (a Ping is only needed in silence)
        self.local = False  # over a Unix socket

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        self.local = sock is not None and sock.family == socket.AF_UNIX
        transport.write(encode(Hello(self.links.token, PROTOCOL_VERSIONS)))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.heard = time.monotonic()
        try:
            frames = self.reader.feed(data)
        except FrameError as exc:
            self._close(f"bad frame: {exc}")
            return
        for frame in frames:
            if self.version is None:
                if not self._hello(frame):
                    return
                continue
            if isinstance(frame, Hello):
                self._close("a second Hello")
                return
            if type(frame) is Ping:
                continue
            assert self.peer is not None
            try:
                self.links.handler.frame_received(self.peer, frame)
            except Exception:
                logger.exception("cluster link %s: frame handler failed", self.peer)

    def _hello(self, frame: Frame) -> bool:
        if not isinstance(frame, Hello):
            self._close("no Hello first")
            return False
        version = common_version(PROTOCOL_VERSIONS, tuple(frame.versions))
        if version is None:
            self._close(f"no common protocol version (theirs {list(frame.versions)})")
            return False
        if self.expected is not None and frame.token != self.expected:
            self._close(f"expected {self.expected}, {frame.token} answered")
            return False
        if frame.token == self.links.token:
            self._close("a link to myself")
            return False
        self.peer, self.version = frame.token, version
        self.links._up(self)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.links._down(self)
        self.transport = None

    def _close(self, why: str) -> None:
        logger.warning("cluster link %s closed: %s", self.peer or self.expected or "?", why)
        if self.transport is not None:
            self.transport.close()

    def send(self, frame: Frame) -> bool:
        """Queue ``frame`` for this loop pass; the frames of one pass leave in one write.

        A member relays a burst of packets per event-loop pass (one readiness, many
        datagrams); one write for all of them is one syscall here and one wakeup of
        the peer, instead of one each.
        """
        t = self.transport
        if t is None or t.is_closing() or t.get_write_buffer_size() + self._queued > WRITE_LIMIT:
            return False
        data = encode(frame)
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(data)
        self._queued += len(data)
        return True

    def silent(self, now: float) -> bool:
        """Nothing heard for SILENT seconds on a link that carries Pings."""
        return (
            self.version is not None
            and self.version >= PING_VERSION
            and (now - self.heard > SILENT)
        )

    def ping(self, now: float) -> None:
        """A Ping, unless frames went out in the last KEEPALIVE: they tell the peer
        as much (its :meth:`silent` counts any bytes), and cost it no wakeup more."""
        t = self.transport
        if now - self.said < KEEPALIVE:
            return
        if (
            self.version is not None
            and self.version >= PING_VERSION
            and t is not None
            and not t.is_closing()
            and t.get_write_buffer_size() <= WRITE_LIMIT
        ):
            t.write(_PING)
            self.said = now

    def _flush(self) -> None:
        pending, self._pending, self._queued = self._pending, [], 0
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(b"".join(pending) if len(pending) > 1 else pending[0])
            self.said = time.monotonic()


class Links:
    """The links of member ``token`` to the other members."""

    def __init__(self, token: str, handler: FrameHandler) -> None:
        self.token = token
        self.handler = handler
        self._links: dict[str, _Connection] = {}
        self._wanted: dict[str, tuple[str, int]] = {}
        self._dialing: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}  # a dialler's backoff, cut short
        self._ever: set[str] = set()  # the peers linked at least once since we started
        self._server: asyncio.AbstractServer | None = None
        self._local: asyncio.AbstractServer | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self.counters: dict[str, int] = {}

    # -- serving ------------------------------------------------------------------------

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Accept links on ``host:port`` (port 0: any); returns the bound address."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, None), host, port, reuse_address=True
        )
        sock = self._server.sockets[0]
        bound = sock.getsockname()
        if LOCAL:
            self._local = await self._listen_local(local_name((bound[0], bound[1])))
        self._keepalive = loop.create_task(self._pings())
        return bound[0], bound[1]

    async def _listen_local(self, name: str) -> asyncio.AbstractServer | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(name)
            sock.listen(64)
            sock.setblocking(False)
            return await asyncio.get_running_loop().create_unix_server(
                lambda: _Connection(self, None), sock=sock
            )
        except OSError as exc:  # the name is taken: links to us go over TCP
            sock.close()
            logger.warning("no local cluster link (%s): TCP only", exc)
            return None

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._wanted.clear()
        for task in self._dialing.values():
            task.cancel()
        self._dialing.clear()
        for conn in list(self._links.values()):
            if conn.transport is not None:
                conn.transport.close()
        for server in (self._local, self._server):
            if server is not None:
                server.close()
                await server.wait_closed()

    # -- the view says who the peers are ---------------------------------------------

    def want(self, peer: str, address: tuple[str, int]) -> None:
        """Keep a link to ``peer`` at ``address`` (dialled only when our token sorts first).

        Called with every view: a dialler waiting out its backoff tries again now
        (the view may say the peer is back)."""
        self._wanted[peer] = address
        if self.token < peer and peer not in self._links:
            if peer not in self._dialing:
                self._dialing[peer] = asyncio.get_running_loop().create_task(self._dial(peer))
            else:
                wake = self._wake.get(peer)
                if wake is not None:
                    wake.set()

    def forget(self, peer: str) -> None:
        """``peer`` left the view: stop re-dialling it and close its link."""
        self._wanted.pop(peer, None)
        self._wake.pop(peer, None)
        task = self._dialing.pop(peer, None)
        if task is not None:
            task.cancel()
        conn = self._links.pop(peer, None)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    def is_up(self, peer: str) -> bool:
        return peer in self._links

    def was_up(self, peer: str) -> bool:
        """Whether a link to ``peer`` was up at some time since this member started."""
        return peer in self._ever

    def silent(self, peer: str) -> bool:
        """Whether ``peer``'s link is up but has said nothing for SILENT seconds (module
        docstring): :meth:`send` still queues frames on it, which may wait there long."""
        conn = self._links.get(peer)
        return conn is not None and conn.silent(time.monotonic())

    def send(self, peer: str, frame: Frame) -> bool:
        """Send ``frame`` to ``peer`` now; False when the link is down or backed up."""
        conn = self._links.get(peer)
        if conn is None or not conn.send(frame):
            self.counters["send_refused"] = self.counters.get("send_refused", 0) + 1
            return False
        return True

    # -- inside ------------------------------------------------------------------------

    async def _pings(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE)
            now = time.monotonic()
            for peer, conn in self._links.items():
                conn.ping(now)
                if conn.silent(now) and not conn.silent(now - KEEPALIVE):
                    self.counters["silent"] = self.counters.get("silent", 0) + 1
                    logger.warning("cluster link %s silent for %.1f s", peer, now - conn.heard)

    async def _dial(self, peer: str) -> None:
        delay = BACKOFF_FIRST
        loop = asyncio.get_running_loop()
        try:
            while peer in self._wanted and peer not in self._links:
                host, port = self._wanted[peer]
                # set by _up (the peer's Hello came) or by want (a view named the peer)
                wake = self._wake[peer] = asyncio.Event()
                with contextlib.suppress(OSError, TimeoutError):
                    if not await self._dial_local(peer, (host, port)):
                        await asyncio.wait_for(
                            loop.create_connection(lambda: _Connection(self, peer), host, port),
                            5.0,
                        )
                    await asyncio.wait_for(wake.wait(), 5 * delay)  # the peer's Hello
                if peer in self._links:
                    return
                self.counters["dial_retries"] = self.counters.get("dial_retries", 0) + 1
                wake = self._wake[peer] = asyncio.Event()
                try:
                    await asyncio.wait_for(wake.wait(), delay)
                    delay = BACKOFF_FIRST  # a new view: the peer may be back
                except TimeoutError:
                    delay = min(delay * 2, BACKOFF_MAX)
        finally:
            if self._dialing.get(peer) is asyncio.current_task():
                del self._dialing[peer]
                self._wake.pop(peer, None)

    async def _dial_local(self, peer: str, address: tuple[str, int]) -> bool:
        """Connect to ``peer``'s local listener, when it is in our namespace (module
        docstring); False when it is not there."""
        if not LOCAL:
            return False
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, local_name(address)), LOCAL_TIMEOUT)
            await loop.create_unix_connection(lambda: _Connection(self, peer), sock=sock)
        except (OSError, TimeoutError):
            sock.close()
            return False
        return True

    def is_local(self, peer: str) -> bool:
        """Whether the link to ``peer`` is up over a Unix socket."""
        conn = self._links.get(peer)
        return conn is not None and conn.local

    def _up(self, conn: _Connection) -> None:
        assert conn.peer is not None
        old = self._links.get(conn.peer)
        if old is not None and old is not conn and old.transport is not None:
            old.transport.close()  # the newer connection replaces it (the peer restarted)
        self._links[conn.peer] = conn
        self._ever.add(conn.peer)
        wake = self._wake.get(conn.peer)
        if wake is not None:  # our dialler waits for this Hello
            wake.set()
        logger.info(
            "cluster link to %s up (protocol %s, %s)",
            conn.peer,
            conn.version,
            "local" if conn.local else "tcp",
        )

    def _down(self, conn: _Connection) -> None:
        peer = conn.peer
        if peer is None or self._links.get(peer) is not conn:
            return
        del self._links[peer]
        logger.info("cluster link to %s down", peer)
        if peer in self._wanted and self.token < peer and peer not in self._dialing:
            self._dialing[peer] = asyncio.get_running_loop().create_task(self._dial(peer))
