"""Server transactions (RFC 3261 §17.2; RFC 6026 §7.1 for the Accepted state)."""

from __future__ import annotations

import enum

from ..sip.message import Response
from ..sip.response import make_response
from .events import (
    Action,
    DeliverRequest,
    Event,
    RequestReceived,
    SendResponse,
    TerminationReason,
    TimerFired,
    TransactionError,
    TransportError,
    TuSendResponse,
)
from .machine import Transaction
from .timers import TRYING_DELAY, Timer

__all__ = [
    "InviteServerState",
    "InviteServerTransaction",
    "NonInviteServerState",
    "NonInviteServerTransaction",
]


class InviteServerState(enum.Enum):
    """RFC 3261 Figure 7, with RFC 6026's Accepted."""

    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class NonInviteServerState(enum.Enum):
    """RFC 3261 Figure 8."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


def _tu_response(event: TuSendResponse, machine: Transaction) -> Response:
    response = event.response
    if response.cseq.method != machine.request.method:
        raise TransactionError(f"response to {response.cseq.method} on a {machine.request.method}")
    return response


class InviteServerTransaction(Transaction):
    """The INVITE server transaction (RFC 3261 §17.2.1, Figure 7; RFC 6026 §7.1).

    :meth:`start` passes the INVITE up and starts the 200 ms wait
    (:attr:`Timer.TRYING`): if the TU has sent no response when it fires, the
    transaction sends 100 Trying itself.  A 2xx from the TU moves to Accepted
    (timer L, 64*T1), where the TU's 2xx retransmissions are sent and INVITE
    retransmissions absorbed (a matching ACK is passed up).  A 300-699 moves to
    Completed: timer G (UDP only, T1 doubling up to T2) re-sends it, H (64*T1)
    gives up waiting for the ACK; the ACK moves to Confirmed, where timer I (T4,
    0 over reliable transports) absorbs ACK retransmissions.
    """

    __slots__ = ("_interval", "_last")

    def _initial(self) -> enum.Enum:
        if self.request.method != "INVITE":
            raise TransactionError(f"not an INVITE: {self.request.method}")
        self._interval = self.config.T1
        self._last: Response | None = None
        return InviteServerState.PROCEEDING

    @property
    def last_response(self) -> Response | None:
        return self._last

    def _start(self, now: float) -> list[Action]:
        return [DeliverRequest(self.request), self._start_timer(Timer.TRYING, TRYING_DELAY)]

    def _handle(self, event: Event, now: float) -> list[Action]:
        S = InviteServerState
        state = self.state
        if isinstance(event, TuSendResponse):
            return self._respond(_tu_response(event, self))
        if state is S.TERMINATED:
            return []
        if isinstance(event, RequestReceived):
            method = event.request.method
            if method == "ACK" and state is S.COMPLETED:
                out = self._cancel(Timer.G, Timer.H)
                self.state = S.CONFIRMED
                return out + self._wait_or_end(Timer.I, self.config.T4, S.TERMINATED)
            if method == "ACK" and state is S.ACCEPTED:
                return [DeliverRequest(event.request)]  # the 2xx's ACK belongs to the TU
            if method == "INVITE" and state in (S.PROCEEDING, S.COMPLETED) and self._last:
                return [SendResponse(self._last)]  # §17.2.1: re-send the latest
            return []  # absorbed (Confirmed, Accepted, or before any response)
        if isinstance(event, TransportError):
            if state in (S.PROCEEDING, S.COMPLETED):  # §17.2.4: inform the TU
                return self._terminate(S.TERMINATED, TerminationReason.TRANSPORT_ERROR)
            return []
        if isinstance(event, TimerFired):
            return self._timer(event.timer)
        raise TransactionError(f"{type(self).__name__} takes no {type(event).__name__}")

    def _respond(self, response: Response) -> list[Action]:
        S = InviteServerState
        state = self.state
        status = response.status
        if state is S.ACCEPTED and 200 <= status < 300:
            return [SendResponse(response)]  # RFC 6026 §7.1: the TU's 2xx retransmissions
        if state is not S.PROCEEDING:
            raise TransactionError(f"{status} response in state {state.name}")
        out = self._cancel(Timer.TRYING)
        out.append(SendResponse(response))
        self._last = response
        if status < 200:
            return out
        if status < 300:
            self.state = S.ACCEPTED
            out.append(self._start_timer(Timer.L, self.config.timeout))
            return out
        self.state = S.COMPLETED
        if not self.reliable:
            out.append(self._start_timer(Timer.G, self._interval))
        out.append(self._start_timer(Timer.H, self.config.timeout))
        return out

    def _timer(self, timer: Timer) -> list[Action]:
        S = InviteServerState
        if not self._fired(timer):
            return []
        if timer is Timer.TRYING:
            self._last = make_response(self.request, 100)
            return [SendResponse(self._last)]
        if timer is Timer.G:
            assert self._last is not None
            self._interval = min(2 * self._interval, self.config.T2)
            return [SendResponse(self._last), self._start_timer(Timer.G, self._interval)]
        if timer is Timer.H:
            return self._terminate(S.TERMINATED, TerminationReason.TIMEOUT)
        return self._terminate(S.TERMINATED)  # I in Confirmed, L in Accepted


class NonInviteServerTransaction(Transaction):
    """The non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).

    Request retransmissions are absorbed in Trying and answered with the last
    response in Proceeding and Completed; timer J (64*T1, 0 over reliable
    transports) ends Completed.
    """

    __slots__ = ("_last",)

    def _initial(self) -> enum.Enum:
        if self.request.method in ("INVITE", "ACK"):
            raise TransactionError(f"not a non-INVITE server request: {self.request.method}")
        self._last: Response | None = None
        return NonInviteServerState.TRYING

    @property
    def last_response(self) -> Response | None:
        return self._last

    def _start(self, now: float) -> list[Action]:
        return [DeliverRequest(self.request)]

    def _handle(self, event: Event, now: float) -> list[Action]:
        S = NonInviteServerState
        state = self.state
        if isinstance(event, TuSendResponse):
            response = _tu_response(event, self)
            if state not in (S.TRYING, S.PROCEEDING):
                raise TransactionError(f"{response.status} response in state {state.name}")
            self._last = response
            if response.status < 200:
                self.state = S.PROCEEDING
                return [SendResponse(response)]
            self.state = S.COMPLETED
            out: list[Action] = [SendResponse(response)]
            return out + self._wait_or_end(Timer.J, self.config.timeout, S.TERMINATED)
        if state is S.TERMINATED:
            return []
        if isinstance(event, RequestReceived):
            if self._last is not None and event.request.method == self.request.method:
                return [SendResponse(self._last)]
            return []  # Trying: absorbed
        if isinstance(event, TransportError):
            if state is S.TRYING:
                return []  # nothing was sent
            return self._terminate(S.TERMINATED, TerminationReason.TRANSPORT_ERROR)
        if isinstance(event, TimerFired):
            if not self._fired(event.timer):
                return []
            return self._terminate(S.TERMINATED)  # J
        raise TransactionError(f"{type(self).__name__} takes no {type(event).__name__}")
