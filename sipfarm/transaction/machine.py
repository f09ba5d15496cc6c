"""What the four transaction machines share (RFC 3261 §17): start once, then handle events."""

from __future__ import annotations

import enum

from ..sip.message import Request
from .events import (
    Action,
    CancelTimer,
    Event,
    StartTimer,
    Terminated,
    TerminationReason,
    TransactionError,
)
from .timers import Timer, TimerConfig

__all__ = ["UNRELIABLE", "Transaction", "is_reliable"]

#: Transports without their own retransmission (RFC 3261 §18, §17.1.1.2).
UNRELIABLE = frozenset({"UDP", "DTLS"})


def is_reliable(request: Request) -> bool:
    """Whether the top Via names a reliable transport (TCP, TLS, SCTP, WS …)."""
    return request.via[0].transport.upper() not in UNRELIABLE


class Transaction:
    """Base of the client and server machines: the request, the config, the state.

    ``reliable`` defaults to what the request's top Via says.  Inputs a state does
    not expect (a stale timer, a late response) are ignored: they return ``[]``.
    Misuse by our own code raises :class:`TransactionError`.
    """

    __slots__ = ("_running", "_started", "config", "reliable", "request", "state")

    def __init__(
        self, request: Request, config: TimerConfig | None = None, *, reliable: bool | None = None
    ) -> None:
        self.request = request
        self.config = config if config is not None else TimerConfig()
        self.reliable = is_reliable(request) if reliable is None else reliable
        self._started = False
        self._running: set[Timer] = set()
        self.state: enum.Enum = self._initial()

    def _initial(self) -> enum.Enum:
        """Check the request, set up the subclass's fields, return the first state."""
        raise NotImplementedError

    @property
    def terminated(self) -> bool:
        return self.state.name == "TERMINATED"

    def start(self, now: float) -> list[Action]:
        """Begin the machine; callable once."""
        if self._started:
            raise TransactionError(f"{type(self).__name__} already started")
        self._started = True
        return self._start(now)

    def _start(self, now: float) -> list[Action]:
        raise NotImplementedError

    def handle(self, event: Event, now: float) -> list[Action]:
        """Feed one input; returns the actions to run, in order."""
        if not self._started:
            raise TransactionError(f"{type(self).__name__} not started")
        return self._handle(event, now)

    def _handle(self, event: Event, now: float) -> list[Action]:
        raise NotImplementedError

    # -- helpers for the subclasses -----------------------------------------------------

    def _start_timer(self, timer: Timer, delay: float) -> StartTimer:
        self._running.add(timer)
        return StartTimer(timer, delay)

    def _cancel(self, *timers: Timer) -> list[Action]:
        out: list[Action] = []
        for t in timers:
            if t in self._running:
                self._running.discard(t)
                out.append(CancelTimer(t))
        return out

    def _fired(self, timer: Timer) -> bool:
        """Whether ``timer`` was running (a fire of a cancelled timer is stale)."""
        if timer in self._running:
            self._running.discard(timer)
            return True
        return False

    def _terminate(
        self, terminated: enum.Enum, reason: TerminationReason = TerminationReason.NORMAL
    ) -> list[Action]:
        out = self._cancel(*sorted(self._running, key=lambda t: t.value))
        self.state = terminated
        out.append(Terminated(reason))
        return out

    def _wait_or_end(self, timer: Timer, delay: float, terminated: enum.Enum) -> list[Action]:
        """Start the Completed/Confirmed wait ``timer``; it is 0 over reliable transports."""
        if self.reliable:
            return self._terminate(terminated)
        return [self._start_timer(timer, delay)]
