"""What the cores say to the edges: where a message came from, and what to do with it.

Inputs are named for what happened, outputs are imperatives (STYLE.md §2).  They
are NamedTuples rather than frozen dataclasses because one is made per packet.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from .sip.errors import SipError

__all__ = ["Action", "Drop", "MessageHandler", "Send", "SendResponse", "Source"]


class Source(NamedTuple):
    """Where a message came from: transport name (``UDP``/``TCP``), address and port."""

    transport: str
    host: str
    port: int


class SendResponse(NamedTuple):
    """Send ``data``; over UDP to ``address``, over a stream on the connection it came in on."""

    data: bytes
    address: tuple[str, int]


class Drop(NamedTuple):
    """Nothing to send; ``reason`` is the counter bumped, ``detail`` says why (for the log)."""

    reason: str
    detail: str


Action = SendResponse | Drop


class Send(NamedTuple):
    """Send ``data`` over ``transport`` to ``address``.

    On UDP a datagram; on TCP the connection with that peer, opened when there
    is none.  ``ref`` is what the core wants back through ``transport_failed``
    when the edge cannot send it (a transaction); None for fire-and-forget sends.
    """

    data: bytes
    transport: str
    address: tuple[str, int]
    ref: object = None


class MessageHandler(Protocol):
    """The core an edge feeds (a port, STYLE.md §6): one whole message in, what to send out.

    A :class:`Drop` says nothing goes out and why (the edge logs garbage); else
    the list of :class:`Send` (possibly empty) is what to send.
    """

    def receive(self, data: bytes, source: Source, now: float) -> list[Send] | Drop:
        """A whole message (a datagram, or what the stream framer cut out)."""
        ...

    def refuse(self, data: bytes, error: SipError, source: Source) -> list[Send] | Drop:
        """Bytes the edge itself found broken (too large, out of step): answer or drop."""
        ...
