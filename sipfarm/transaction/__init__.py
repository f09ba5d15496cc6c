"""The sans-IO transaction layer (RFC 3261 §17; RFC 6026 for 2xx to INVITE).

Each machine is built from its request and a :class:`TimerConfig`, started with
``start(now)`` and fed inputs with ``handle(event, now)``; both return the
actions for the edge to run.  :mod:`.key` says which transaction a message
belongs to.  No I/O, no clock, no logging here.
"""

from .client import (
    InviteClientState,
    InviteClientTransaction,
    NonInviteClientState,
    NonInviteClientTransaction,
    make_ack,
)
from .events import (
    Action,
    CancelTimer,
    DeliverRequest,
    DeliverResponse,
    Event,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    StartTimer,
    Terminated,
    TerminationReason,
    TimerFired,
    TransactionError,
    TransportError,
    TuSendResponse,
)
from .key import (
    ClientKey,
    LegacyServerKey,
    ServerKey,
    branch,
    cancel_target_key,
    client_key,
    server_key,
)
from .machine import Transaction, is_reliable
from .server import (
    InviteServerState,
    InviteServerTransaction,
    NonInviteServerState,
    NonInviteServerTransaction,
)
from .timers import Timer, TimerConfig

__all__ = [
    "Action",
    "CancelTimer",
    "ClientKey",
    "DeliverRequest",
    "DeliverResponse",
    "Event",
    "InviteClientState",
    "InviteClientTransaction",
    "InviteServerState",
    "InviteServerTransaction",
    "LegacyServerKey",
    "NonInviteClientState",
    "NonInviteClientTransaction",
    "NonInviteServerState",
    "NonInviteServerTransaction",
    "RequestReceived",
    "ResponseReceived",
    "SendRequest",
    "SendResponse",
    "ServerKey",
    "StartTimer",
    "Terminated",
    "TerminationReason",
    "Timer",
    "TimerConfig",
    "TimerFired",
    "Transaction",
    "TransactionError",
    "TransportError",
    "TuSendResponse",
    "branch",
    "cancel_target_key",
    "client_key",
    "is_reliable",
    "make_ack",
    "server_key",
]
