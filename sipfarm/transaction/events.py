"""What a transaction is told (inputs) and what it asks for (actions) (RFC 3261 §17).

Inputs are named for what happened, actions are imperatives (STYLE.md §2).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..sip.message import Request, Response
from .timers import Timer

__all__ = [
    "Action",
    "CancelTimer",
    "DeliverRequest",
    "DeliverResponse",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "SendRequest",
    "SendResponse",
    "StartTimer",
    "Terminated",
    "TerminationReason",
    "TimerFired",
    "TransactionError",
    "TransportError",
    "TuSendResponse",
]


class TransactionError(Exception):
    """Our own misuse of a transaction (the TU's or the edge's bug), never remote input."""


# -- inputs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """The transport passed up a request matching this transaction (§17.2.3)."""

    request: Request


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The transport passed up a response matching this transaction (§17.1.3)."""

    response: Response


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer started by :class:`StartTimer` ran out."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class TransportError:
    """The transport failed to send what this transaction asked it to (§17.1.4, §17.2.4)."""


@dataclass(frozen=True, slots=True)
class TuSendResponse:
    """The TU answers the server transaction's request (§17.2.1, §17.2.2)."""

    response: Response


Event = RequestReceived | ResponseReceived | TimerFired | TransportError | TuSendResponse

# -- actions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Pass ``request`` (the request, a retransmission of it, or an ACK) to the transport."""

    request: Request


@dataclass(frozen=True, slots=True)
class SendResponse:
    """Pass ``response`` to the transport (§17.2, §18.2.2)."""

    response: Response


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)start ``timer`` to fire ``delay`` seconds from now."""

    timer: Timer
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Stop ``timer`` if it is running."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class DeliverResponse:
    """Pass ``response`` up to the TU (§17.1.1.2, §17.1.2.2)."""

    response: Response


@dataclass(frozen=True, slots=True)
class DeliverRequest:
    """Pass ``request`` up to the TU (§17.2.1, §17.2.2)."""

    request: Request


class TerminationReason(enum.Enum):
    """Why a transaction ended: the TU is told of timeouts and transport errors (§8.1.3.1)."""

    NORMAL = "normal"
    TIMEOUT = "timeout"  # timer B, F or H: the TU treats it as a 408 (§8.1.3.1)
    TRANSPORT_ERROR = "transport-error"  # the TU treats it as a 503 (§8.1.3.1)


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction reached the Terminated state: forget it (and tell the TU why)."""

    reason: TerminationReason = TerminationReason.NORMAL


Action = (
    SendRequest
    | SendResponse
    | StartTimer
    | CancelTimer
    | DeliverResponse
    | DeliverRequest
    | Terminated
)
