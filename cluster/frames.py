"""The cluster link's frames: msgpack over a byte stream between members (sans-IO).

DESIGN.md "Cluster": one persistent TCP connection per pair of members carries
relayed SIP packets and member-to-member calls.  This module is the wire form
only: values in, bytes out, and a :class:`FrameReader` that cuts a stream into
frames however it arrives.  The asyncio link that owns the sockets is an edge.

Wire form: each frame is a msgpack array ``[kind, ...fields]``; frames follow
each other on the stream (msgpack is self-delimiting), and a reader refuses a
frame larger than its limit.  The first frame each side sends is
:class:`Hello`; the link closes when the versions share no common one, so a
rolling update can mix two releases as long as they overlap.

A :class:`Relay` carries a SIP packet exactly as it arrived (bytes), where it
came from (transport, address, port) and which member received it, so that the
owner stamps ``received``/``rport`` from the real source and a response to a
TCP request goes back through the member holding that connection.  ``hops``
counts relays: a member never relays a packet that was relayed to it (DESIGN.md
"a hop count in the frame").
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

__all__ = [
    "PING_VERSION",
    "PROTOCOL_VERSIONS",
    "Emit",
    "Frame",
    "FrameError",
    "FrameReader",
    "Hello",
    "Ping",
    "Relay",
    "Request",
    "Response",
    "common_version",
    "encode",
]

#: The cluster protocol versions this release speaks, newest last.  Version 2 adds
#: :class:`Ping`: a link on version 1 (a peer of the previous release, during a
#: rolling update) carries none, and is never taken as silent.
PROTOCOL_VERSIONS = (1, 2)
#: The first version whose links carry :class:`Ping`.
PING_VERSION = 2

#: Frames larger than this are refused (a relayed SIP message is at most 64 KiB).
MAX_FRAME = 256 * 1024


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol: close the link."""


class Hello(NamedTuple):
    """The first frame on a link: who speaks, and the versions it speaks."""

    token: str
    versions: tuple[int, ...]


class Relay(NamedTuple):
    """A SIP packet for the member that owns its work."""

    data: bytes
    transport: str  # "UDP" / "TCP": how it reached the farm
    host: str  # its source address …
    port: int  # … and port
    received_by: str  # the token of the member whose socket it arrived on
    hops: int = 1


class Emit(NamedTuple):
    """Bytes for the receiving member to send from its own socket to ``host:port``.

    Behind a DNAT balancer only the member that received a flow's packets can
    answer on that flow: the balancer's conntrack turns that member's address
    back into the VIP, and a TCP connection lives in one process.  So the
    owner of the work hands its answer back to that member.
    """

    data: bytes
    transport: str
    host: str
    port: int


class Ping(NamedTuple):
    """A keep-alive: the sender's loop runs (see :mod:`cluster.link`, "Silence")."""


class Request(NamedTuple):
    """A call to another member (an account lookup, a binding save …); ``id`` pairs the answer."""

    id: int
    method: str
    args: dict[str, Any]


class Response(NamedTuple):
    """The answer to :class:`Request` ``id``: ``result`` or an ``error`` text."""

    id: int
    result: Any = None
    error: str | None = None


Frame = Hello | Relay | Request | Response | Emit | Ping

_KINDS: dict[type, int] = {Hello: 0, Relay: 1, Request: 2, Response: 3, Emit: 4, Ping: 5}
_TYPES: dict[int, type] = {v: k for k, v in _KINDS.items()}


def encode(frame: Frame) -> bytes:
    """The bytes of one frame."""
    return msgpack.packb([_KINDS[type(frame)], *frame], use_bin_type=True)  # type: ignore[no-any-return]


def common_version(ours: tuple[int, ...], theirs: tuple[int, ...]) -> int | None:
    """The newest version both sides speak, or None (then the link closes)."""
    shared = set(ours) & set(theirs)
    return max(shared) if shared else None


def _frame(obj: object) -> Frame:
    if not isinstance(obj, list) or not obj or type(obj[0]) is not int:
        raise FrameError(f"not a frame: {type(obj).__name__}")
    cls = _TYPES.get(obj[0])
    if cls is None:
        raise FrameError(f"unknown frame kind {obj[0]}")
    fields = obj[1:]
    try:
        frame = cls(*fields)
    except TypeError as exc:
        raise FrameError(f"bad {cls.__name__} frame: {exc}") from None
    _check(frame)
    return frame  # type: ignore[no-any-return]


def _check(frame: Frame) -> None:
    """Field types, so that the code that reads a frame can trust it."""
    ok: bool
    if isinstance(frame, Hello):
        ok = isinstance(frame.token, str) and isinstance(frame.versions, list | tuple)
        ok = ok and all(type(v) is int for v in frame.versions)
    elif isinstance(frame, Relay):
        ok = (
            isinstance(frame.data, bytes)
            and frame.transport in ("UDP", "TCP", "TLS")
            and isinstance(frame.host, str)
            and type(frame.port) is int
            and 0 <= frame.port < 65536
            and isinstance(frame.received_by, str)
            and type(frame.hops) is int
            and frame.hops >= 0
        )
    elif isinstance(frame, Emit):
        ok = (
            isinstance(frame.data, bytes)
            and frame.transport in ("UDP", "TCP", "TLS")
            and isinstance(frame.host, str)
            and type(frame.port) is int
            and 0 <= frame.port < 65536
        )
    elif isinstance(frame, Ping):
        ok = True
    elif isinstance(frame, Request):
        ok = type(frame.id) is int and isinstance(frame.method, str)
        ok = ok and isinstance(frame.args, dict)
    else:
        ok = type(frame.id) is int and (frame.error is None or isinstance(frame.error, str))
    if not ok:
        raise FrameError(f"bad field in {type(frame).__name__} frame")


class FrameReader:
    """Cuts a byte stream into frames; :meth:`feed` returns the frames completed so far.

    Raises :class:`FrameError` for anything that is not a frame, or when more than
    ``2 * max_frame`` bytes wait for a frame to end; the link then closes.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._unpacker = msgpack.Unpacker(
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_buffer_size=2 * max_frame,
            max_bin_len=max_frame,
            max_str_len=max_frame,
            max_array_len=16,
            max_map_len=64,
        )

    def feed(self, data: bytes) -> list[Frame]:
        try:
            self._unpacker.feed(data)
            return [_frame(obj) for obj in self._unpacker]
        except msgpack.BufferFull:
            raise FrameError("frame too large") from None
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise FrameError(f"not msgpack: {exc}") from None
