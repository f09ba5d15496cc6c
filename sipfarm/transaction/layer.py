"""The transaction layer: the four machines in tables, on one timer heap (RFC 3261 §17).

Sans-IO like the machines it holds: the transaction user (TU: the proxy core)
creates transactions, feeds them what arrived, and gets back what to send as
:class:`~sipfarm.actions.Send` values in :attr:`TransactionLayer.out`.  Time is
the ``now`` passed in; :meth:`TransactionLayer.advance` fires the timers that
are due and :meth:`TransactionLayer.next_deadline` tells the edge when to call it.

One heap serves every timer of every transaction (and the TU's own, like the
proxy's timer C): an entry is ``(when, seq, callback, arg)``.  Cancelling is
lazy: a transaction remembers the ``seq`` of each running timer and a fire
whose ``seq`` is no longer current is ignored, so a cancel costs a dict pop.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Protocol

from ..actions import Send
from ..sip.message import Request, Response
from .client import InviteClientTransaction, NonInviteClientTransaction
from .events import (
    Action,
    CancelTimer,
    DeliverRequest,
    DeliverResponse,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    StartTimer,
    Terminated,
    TerminationReason,
    TimerFired,
    TransportError,
    TuSendResponse,
)
from .key import ClientKey, LegacyServerKey, ServerKey, client_key, server_key
from .machine import Transaction
from .server import InviteServerTransaction, NonInviteServerTransaction
from .timers import Timer, TimerConfig

__all__ = ["ClientEntry", "ServerEntry", "TransactionLayer", "TransactionUser"]

_FIRED = {t: TimerFired(t) for t in Timer}
#: The states of a transaction whose work is done (see TransactionLayer.active).
_LINGERING = frozenset({"Completed", "Confirmed", "Accepted", "Terminated"})
_TRANSPORT_ERROR = TransportError()


class _Entry:
    """A machine with where it sends, its running timers and the TU's note on it."""

    __slots__ = ("address", "context", "machine", "timers", "transport")

    def __init__(
        self, machine: Transaction, transport: str, address: tuple[str, int], context: Any
    ) -> None:
        self.machine = machine
        self.transport = transport
        self.address = address
        self.context = context
        self.timers: dict[Timer, int] = {}


class ServerEntry(_Entry):
    """A server transaction: responses go to ``address`` over ``transport`` (§18.2.2)."""

    __slots__ = ("key",)

    key: ServerKey | LegacyServerKey


class ClientEntry(_Entry):
    """A client transaction: the request goes to the next hop ``address`` (§18.1.1)."""

    __slots__ = ("key",)

    key: ClientKey


class TransactionUser(Protocol):
    """What the layer passes up (RFC 3261 §17: the TU above the transactions)."""

    def on_request(self, entry: ServerEntry, request: Request, now: float) -> None:
        """A new request, or an ACK to a 2xx the INVITE server transaction passed up."""

    def on_response(self, entry: ClientEntry, response: Response, now: float) -> None:
        """A response for a client transaction."""

    def on_terminated(
        self, entry: ServerEntry | ClientEntry, reason: TerminationReason, now: float
    ) -> None:
        """A transaction ended; ``reason`` says whether it timed out or failed to send."""


class TransactionLayer:
    """Server and client transactions by key, and the timer heap they share."""

    def __init__(self, config: TimerConfig | None = None) -> None:
        self.config = config if config is not None else TimerConfig()
        self.tu: TransactionUser | None = None
        self.servers: dict[ServerKey | LegacyServerKey, ServerEntry] = {}
        self.clients: dict[ClientKey, ClientEntry] = {}
        self.out: list[Send] = []
        self._heap: list[tuple[float, int, Callable[[Any, int, float], None], Any]] = []
        self._seq = 0

    # -- timers ------------------------------------------------------------------------

    def schedule(self, when: float, callback: Callable[[Any, int, float], None], arg: Any) -> int:
        """Call ``callback(arg, seq, now)`` once ``now`` reaches ``when``; returns ``seq``."""
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, callback, arg))
        return self._seq

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def advance(self, now: float) -> None:
        """Fire every timer due by ``now`` (what they send lands in :attr:`out`)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, callback, arg = heapq.heappop(heap)
            callback(arg, seq, now)

    def __len__(self) -> int:
        return len(self.servers) + len(self.clients)

    def clear(self) -> int:
        """Drop every transaction and timer (their work went to others); how many there were.

        For a member that was frozen past its lease: the farm took its work over,
        and a retransmission from it now would be a duplicate (a second INVITE to a
        callee that already answered another member's)."""
        n = len(self)
        self.servers.clear()
        self.clients.clear()
        self._heap.clear()
        return n

    def active(self) -> int:
        """Transactions still at work: not yet answered, or their request not yet answered.

        The others (Completed, Confirmed, Accepted) only absorb retransmissions until
        their timer ends them, 32 s over UDP: a drained member may stop with those,
        and another member serves a late retransmission as a new request.
        """
        return sum(
            1
            for entries in (self.servers.values(), self.clients.values())
            for entry in entries
            if entry.machine.state.value not in _LINGERING
        )

    # -- server side -------------------------------------------------------------------

    def match_server(self, request: Request) -> ServerEntry | None:
        """The server transaction a request (a retransmission, an ACK) belongs to (§17.2.3)."""
        return self.servers.get(server_key(request))

    def create_server(
        self, request: Request, transport: str, address: tuple[str, int], context: Any, now: float
    ) -> ServerEntry:
        """A server transaction for a new request; its DeliverRequest reaches the TU."""
        if request.method == "INVITE":
            machine: Transaction = InviteServerTransaction(
                request, self.config, reliable=transport != "UDP"
            )
        else:
            machine = NonInviteServerTransaction(request, self.config, reliable=transport != "UDP")
        entry = ServerEntry(machine, transport, address, context)
        entry.key = server_key(request)
        self.servers[entry.key] = entry
        self._run(entry, machine.start(now), now)
        return entry

    def received_request(self, entry: ServerEntry, request: Request, now: float) -> None:
        """A retransmission or an ACK matched ``entry``."""
        self._run(entry, entry.machine.handle(RequestReceived(request), now), now)

    def respond(self, entry: ServerEntry, response: Response, now: float) -> None:
        """The TU answers ``entry``'s request (ignored once the transaction has ended)."""
        if entry.machine.terminated:
            return
        self._run(entry, entry.machine.handle(TuSendResponse(response), now), now)

    # -- client side -------------------------------------------------------------------

    def match_client(self, response: Response) -> ClientEntry | None:
        """The client transaction a response belongs to (§17.1.3)."""
        k = client_key(response)
        return None if k is None else self.clients.get(k)

    def create_client(
        self, request: Request, transport: str, address: tuple[str, int], context: Any, now: float
    ) -> ClientEntry:
        """A client transaction that sends ``request`` to ``address`` now."""
        reliable = transport != "UDP"
        if request.method == "INVITE":
            machine: Transaction = InviteClientTransaction(request, self.config, reliable=reliable)
        else:
            machine = NonInviteClientTransaction(request, self.config, reliable=reliable)
        entry = ClientEntry(machine, transport, address, context)
        k = client_key(request)
        assert k is not None, "our requests always carry a branch"
        entry.key = k
        self.clients[k] = entry
        self._run(entry, machine.start(now), now)
        return entry

    def received_response(self, entry: ClientEntry, response: Response, now: float) -> None:
        self._run(entry, entry.machine.handle(ResponseReceived(response), now), now)

    def transport_failed(self, entry: ServerEntry | ClientEntry, now: float) -> None:
        """The edge could not send what ``entry`` asked for (§17.1.4, §17.2.4)."""
        self._run(entry, entry.machine.handle(_TRANSPORT_ERROR, now), now)

    def abandon(self, entry: ServerEntry | ClientEntry) -> None:
        """Forget ``entry`` without its machine ending (§9.1: a CANCELled INVITE that never
        got its final response); its timers are dropped, the TU is not told."""
        entry.timers.clear()
        if isinstance(entry, ServerEntry):
            if self.servers.get(entry.key) is entry:
                del self.servers[entry.key]
        elif self.clients.get(entry.key) is entry:
            del self.clients[entry.key]

    # -- running actions ---------------------------------------------------------------

    def _fire(self, arg: tuple[ServerEntry | ClientEntry, Timer], seq: int, now: float) -> None:
        entry, timer = arg
        if entry.timers.get(timer) != seq:
            return  # cancelled, or restarted since
        del entry.timers[timer]
        self._run(entry, entry.machine.handle(_FIRED[timer], now), now)

    def _run(self, entry: ServerEntry | ClientEntry, actions: list[Action], now: float) -> None:
        tu = self.tu
        assert tu is not None, "set the transaction user first"
        for action in actions:
            kind = type(action)
            if kind is SendResponse or kind is SendRequest:
                message = action.response if kind is SendResponse else action.request  # type: ignore[union-attr]
                self.out.append(Send(bytes(message), entry.transport, entry.address, entry))
            elif kind is StartTimer:
                timer = action.timer  # type: ignore[union-attr]
                entry.timers[timer] = self.schedule(
                    now + action.delay,  # type: ignore[union-attr]
                    self._fire,
                    (entry, timer),
                )
            elif kind is CancelTimer:
                entry.timers.pop(action.timer, None)  # type: ignore[union-attr]
            elif kind is DeliverResponse:
                assert isinstance(entry, ClientEntry)
                tu.on_response(entry, action.response, now)  # type: ignore[union-attr]
            elif kind is DeliverRequest:
                assert isinstance(entry, ServerEntry)
                tu.on_request(entry, action.request, now)  # type: ignore[union-attr]
            elif kind is Terminated:
                self.abandon(entry)
                tu.on_terminated(entry, action.reason, now)  # type: ignore[union-attr]
