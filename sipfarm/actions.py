"""What the cores say to the edges: where a message came from, and what to do with it.

Inputs are named for what happened, outputs are imperatives (STYLE.md §2).  They
are NamedTuples rather than frozen dataclasses because one is made per packet.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from .sip.errors import SipError

__all__ = ["Action", "Drop", "MessageHandler", "SendResponse", "Source"]


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


class MessageHandler(Protocol):
    """The core an edge feeds (a port, STYLE.md §6): one whole message in, one action out."""

    def receive(self, data: bytes, source: Source) -> Action:
        """A whole message (a datagram, or what the stream framer cut out)."""
        ...

    def refuse(self, data: bytes, error: SipError, source: Source) -> Action:
        """Bytes the edge itself found broken (too large, out of step): answer or drop."""
        ...
