"""Transaction timers and their configuration (RFC 3261 §17, Table 4; RFC 6026 §8.11)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["TRYING_DELAY", "Timer", "TimerConfig"]

#: RFC 3261 §17.2.1: the server answers 100 Trying unless the TU answers within 200 ms.
TRYING_DELAY = 0.2


class Timer(enum.Enum):
    """The timers of RFC 3261 Table 4 and RFC 6026 §8.11, plus the 200 ms 100-Trying wait."""

    A = "A"  # INVITE request retransmit interval, UDP only
    B = "B"  # INVITE transaction timeout
    C = "C"  # proxy INVITE transaction timeout (§16.6; not run by these machines)
    D = "D"  # wait time for response retransmits
    E = "E"  # non-INVITE request retransmit interval, UDP only
    F = "F"  # non-INVITE transaction timeout
    G = "G"  # INVITE response retransmit interval
    H = "H"  # wait time for ACK receipt
    I = "I"  # noqa: E741  wait time for ACK retransmits
    J = "J"  # wait time for non-INVITE request retransmits
    K = "K"  # wait time for response retransmits
    L = "L"  # RFC 6026: wait time for accepted INVITE request retransmits
    M = "M"  # RFC 6026: wait time for retransmission of 2xx to INVITE
    TRYING = "TRYING"  # RFC 3261 §17.2.1: 200 ms before the server sends 100 Trying


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2 and T4 of RFC 3261 §17.1.1.1 and Table 4, in seconds."""

    T1: float = 0.5
    T2: float = 4.0
    T4: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.T1 <= self.T2 or self.T4 <= 0:
            raise ValueError("need 0 < T1 <= T2 and T4 > 0")

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J (unreliable), L and M."""
        return 64 * self.T1
