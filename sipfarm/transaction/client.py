"""Client transactions (RFC 3261 §17.1; RFC 6026 §7.2 for the Accepted state)."""

from __future__ import annotations

import enum

from ..sip.cseq import CSeq
from ..sip.headers import HeaderField, Headers
from ..sip.message import Request, Response
from .events import (
    Action,
    DeliverResponse,
    Event,
    ResponseReceived,
    SendRequest,
    TerminationReason,
    TimerFired,
    TransactionError,
    TransportError,
)
from .machine import Transaction
from .timers import Timer

__all__ = [
    "InviteClientState",
    "InviteClientTransaction",
    "NonInviteClientState",
    "NonInviteClientTransaction",
    "make_ack",
]


class InviteClientState(enum.Enum):
    """RFC 3261 Figure 5, with RFC 6026's Accepted."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class NonInviteClientState(enum.Enum):
    """RFC 3261 Figure 6."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


def make_ack(request: Request, response: Response) -> Request:
    """The ACK to a non-2xx final response (RFC 3261 §17.1.1.3).

    Request-URI, Call-ID and From of the request, To of the response, the CSeq
    number with method ACK, the request's top Via only, and its Route lines.
    """
    src = request.headers
    fields = [HeaderField("Via", str(request.via[0]))]
    fields += src.fields("route")
    fields += src.fields("max-forwards") or [HeaderField("Max-Forwards", "70")]
    fields += src.fields("from")
    fields += response.headers.fields("to")
    fields += src.fields("call-id")
    fields.append(HeaderField("CSeq", str(CSeq(request.cseq.seq, "ACK"))))
    fields.append(HeaderField("Content-Length", "0"))
    return Request(method="ACK", uri=request.uri, headers=Headers(fields))


def _response(event: Event, kind: str) -> Response | None:
    if isinstance(event, ResponseReceived):
        return event.response
    if isinstance(event, TimerFired | TransportError):
        return None
    raise TransactionError(f"{kind} takes no {type(event).__name__}")


class InviteClientTransaction(Transaction):
    """The INVITE client transaction (RFC 3261 §17.1.1, Figure 5; RFC 6026 §7.2).

    Timer A (UDP only) starts at T1 and doubles on every retransmission
    (§17.1.1.2); B ends Calling after 64*T1.  A 2xx moves to Accepted (timer M,
    64*T1), where further 2xx are passed up for the TU to ACK.  A 300-699
    moves to Completed: the ACK is sent and re-sent on every retransmission of
    the final response until timer D (32 s, 0 over reliable transports).
    """

    __slots__ = ("_ack", "_interval")

    def _initial(self) -> enum.Enum:
        if self.request.method != "INVITE":
            raise TransactionError(f"not an INVITE: {self.request.method}")
        self._interval = self.config.T1
        self._ack: Request | None = None
        return InviteClientState.CALLING

    @property
    def ack(self) -> Request | None:
        """The ACK sent in Completed, once there."""
        return self._ack

    def _start(self, now: float) -> list[Action]:
        out: list[Action] = [SendRequest(self.request)]
        if not self.reliable:
            out.append(self._start_timer(Timer.A, self._interval))
        out.append(self._start_timer(Timer.B, self.config.timeout))
        return out

    def _handle(self, event: Event, now: float) -> list[Action]:
        S = InviteClientState
        response = _response(event, type(self).__name__)
        state = self.state
        if state is S.TERMINATED:
            return []
        if isinstance(event, TransportError):
            if state in (S.CALLING, S.COMPLETED):  # §17.1.4: we sent there
                return self._terminate(S.TERMINATED, TerminationReason.TRANSPORT_ERROR)
            return []
        if isinstance(event, TimerFired):
            return self._timer(event.timer)
        assert response is not None
        status = response.status
        if state in (S.CALLING, S.PROCEEDING):
            if status < 200:
                out = self._cancel(Timer.A, Timer.B)
                self.state = S.PROCEEDING
                return [*out, DeliverResponse(response)]
            if status < 300:  # RFC 6026 §8.4
                out = self._cancel(Timer.A, Timer.B)
                self.state = S.ACCEPTED
                return [
                    *out,
                    self._start_timer(Timer.M, self.config.timeout),
                    DeliverResponse(response),
                ]
            out = self._cancel(Timer.A, Timer.B)
            self._ack = make_ack(self.request, response)
            out += [SendRequest(self._ack), DeliverResponse(response)]
            self.state = S.COMPLETED
            return out + self._wait_or_end(Timer.D, 32.0, S.TERMINATED)
        if state is S.COMPLETED:
            if status >= 300 and self._ack is not None:
                return [SendRequest(self._ack)]
            return []
        # ACCEPTED: 2xx retransmissions (or forks) go up to the TU (RFC 6026 §8.4)
        if 200 <= status < 300:
            return [DeliverResponse(response)]
        return []

    def _timer(self, timer: Timer) -> list[Action]:
        S = InviteClientState
        if not self._fired(timer):
            return []
        if timer is Timer.A:
            self._interval *= 2
            return [SendRequest(self.request), self._start_timer(Timer.A, self._interval)]
        if timer is Timer.B:
            return self._terminate(S.TERMINATED, TerminationReason.TIMEOUT)
        return self._terminate(S.TERMINATED)  # D in Completed, M in Accepted


class NonInviteClientTransaction(Transaction):
    """The non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).

    Timer E (UDP only) starts at T1 and doubles up to T2; in Proceeding it is
    T2.  F ends the transaction after 64*T1; K (T4, 0 over reliable transports)
    absorbs response retransmissions in Completed.
    """

    __slots__ = ("_interval",)

    def _initial(self) -> enum.Enum:
        if self.request.method in ("INVITE", "ACK"):
            raise TransactionError(f"not a non-INVITE client request: {self.request.method}")
        self._interval = self.config.T1
        return NonInviteClientState.TRYING

    def _start(self, now: float) -> list[Action]:
        out: list[Action] = [SendRequest(self.request)]
        if not self.reliable:
            out.append(self._start_timer(Timer.E, self._interval))
        out.append(self._start_timer(Timer.F, self.config.timeout))
        return out

    def _handle(self, event: Event, now: float) -> list[Action]:
        S = NonInviteClientState
        response = _response(event, type(self).__name__)
        state = self.state
        if state is S.TERMINATED:
            return []
        if isinstance(event, TransportError):
            if state is S.COMPLETED:
                return []
            return self._terminate(S.TERMINATED, TerminationReason.TRANSPORT_ERROR)
        if isinstance(event, TimerFired):
            if not self._fired(event.timer):
                return []
            if event.timer is Timer.E:
                if state is S.PROCEEDING:
                    self._interval = self.config.T2
                else:
                    self._interval = min(2 * self._interval, self.config.T2)
                return [SendRequest(self.request), self._start_timer(Timer.E, self._interval)]
            if event.timer is Timer.F:
                return self._terminate(S.TERMINATED, TerminationReason.TIMEOUT)
            return self._terminate(S.TERMINATED)  # K
        assert response is not None
        if state is S.COMPLETED:
            return []  # §17.1.2.2: retransmissions absorbed
        if response.status < 200:
            self.state = S.PROCEEDING
            return [DeliverResponse(response)]
        out = self._cancel(Timer.E, Timer.F)
        out.append(DeliverResponse(response))
        self.state = S.COMPLETED
        return out + self._wait_or_end(Timer.K, self.config.T4, S.TERMINATED)
