"""The location service: AOR -> bindings (RFC 3261 §10.2, the "location service" of §16.5).

:class:`Location` is the storage port the registrar and the proxy are given (STYLE.md §6);
:class:`MemoryLocation` keeps it in a dict.  A later store (durable, per-account owner)
implements the same five calls.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Protocol

from .binding import Binding

__all__ = ["Location", "MemoryLocation", "rank"]


class Location(Protocol):
    """Where bindings live.  Times are wall-clock seconds passed in; nothing reads a clock."""

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """The unexpired bindings of ``aor``, best q first, then most recently registered."""
        ...

    def bindings(self, aor: str) -> list[Binding]:
        """Every stored binding of ``aor``, expired or not, in stored order."""
        ...

    def store(self, aor: str, bindings: Sequence[Binding]) -> None:
        """Replace the bindings of ``aor``; an empty sequence removes the AOR."""
        ...

    def expire(self, now: float, budget: int) -> int:
        """Remove bindings expired at ``now``, examining at most ``budget`` AORs; how many went."""
        ...

    def __len__(self) -> int:
        """How many bindings are stored (expired ones not yet removed included)."""
        ...


def rank(binding: Binding) -> tuple[float, float]:
    """Sort key of :meth:`Location.lookup`: q descending (absent counts as 1.0), then newest."""
    q = binding.q
    return (-1.0 if q is None else -q, -binding.registered_at)


class MemoryLocation:
    """The location table in memory.

    ``_aors`` maps an AOR to the tuple of its bindings.  Expiry is a heap of
    ``(due, aor)`` with lazy deletion: ``_due[aor]`` is the time the AOR is next
    examined, never later than its earliest expiry.  A store pushes only when its
    earliest expiry comes before ``_due`` (a refresh pushes nothing); an entry whose
    time is not ``_due[aor]`` any more is stale and dropped when it surfaces.  So the
    heap holds about one entry per AOR, and :meth:`expire` costs O(log n) per AOR it
    examines, at most ``budget`` of them per call.
    """

    __slots__ = ("_aors", "_count", "_due", "_heap")

    def __init__(self) -> None:
        self._aors: dict[str, tuple[Binding, ...]] = {}
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, aor: object) -> bool:
        return aor in self._aors

    def aors(self) -> list[str]:
        """Every AOR with stored bindings (for tests and tools; not part of the port)."""
        return list(self._aors)

    def lookup(self, aor: str, now: float) -> list[Binding]:
        live = [b for b in self._aors.get(aor, ()) if b.expires_at > now]
        if len(live) > 1:
            live.sort(key=rank)
        return live

    def bindings(self, aor: str) -> list[Binding]:
        return list(self._aors.get(aor, ()))

    def store(self, aor: str, bindings: Sequence[Binding]) -> None:
        old = self._aors.get(aor, ())
        self._count += len(bindings) - len(old)
        if not bindings:
            if old:
                del self._aors[aor]
                del self._due[aor]
            return
        self._aors[aor] = tuple(bindings)
        first = _earliest(bindings)
        due = self._due.get(aor)
        if due is None or first < due:
            self._due[aor] = first
            heapq.heappush(self._heap, (first, aor))

    def expire(self, now: float, budget: int, changed: list[str] | None = None) -> int:
        """:meth:`Location.expire`; the AORs that lost bindings are appended to
        ``changed`` (their owner writes what is left to storage)."""
        heap = self._heap
        due = self._due
        removed = 0
        examined = 0
        while heap and examined < budget and heap[0][0] <= now:
            at, aor = heapq.heappop(heap)
            examined += 1
            if due.get(aor) != at:
                continue  # stale: the AOR went, or was rescheduled
            old = self._aors[aor]
            live = tuple(b for b in old if b.expires_at > now)
            removed += len(old) - len(live)
            if changed is not None and len(live) < len(old):
                changed.append(aor)
            if live:
                self._aors[aor] = live
                first = _earliest(live)
                due[aor] = first
                heapq.heappush(heap, (first, aor))
            else:
                del self._aors[aor]
                del due[aor]
        self._count -= removed
        return removed


def _earliest(bindings: Sequence[Binding]) -> float:
    if len(bindings) == 1:
        return bindings[0].expires_at
    return min([b.expires_at for b in bindings])
