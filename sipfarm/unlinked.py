"""Frames a starting member holds for peers it has not linked with yet (sans-IO).

A member that (re)starts receives its flows' packets from its first moment: the
balancer keeps the flows of an address whose process restarted.  Until the
peers' diallers reach it (milliseconds: a view that names it again cuts their
backoff short, :meth:`cluster.link.Links.want`) it cannot relay, and a packet
for a live peer served elsewhere goes wrong: an in-dialog request leaves under
its route owner's branch token (:mod:`sipfarm.proxy.proxy`), so the callee's
answers go to that owner, not to the member whose transaction sent it, and that
transaction retransmits until Timer F while the caller's BYE is answered only by
luck.  So such frames wait here, a bounded number for a bounded time after the
start; then they go the way of an unreachable member's (the peer is frozen or
cut off), which is the caller's ``otherwise``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cluster.frames import Frame

__all__ = ["Unlinked"]

#: What a held frame becomes when its peer's link does not come: run by the caller.
Otherwise = Callable[[], None]


class Unlinked:
    """Frames by peer, held from ``started`` for at most ``wait`` seconds."""

    __slots__ = ("_held", "count", "limit", "started", "wait")

    def __init__(self, started: float, wait: float, limit: int) -> None:
        self.started = started
        self.wait = wait
        self.limit = limit
        self.count = 0
        self._held: dict[str, list[tuple[Frame, Otherwise]]] = {}

    def __bool__(self) -> bool:
        return self.count > 0

    def hold(self, peer: str, frame: Frame, otherwise: Otherwise, now: float) -> bool:
        """Hold ``frame`` for ``peer``; False when the start is over or too much is held."""
        if now - self.started >= self.wait or self.count >= self.limit:
            return False
        self._held.setdefault(peer, []).append((frame, otherwise))
        self.count += 1
        return True

    def due(
        self, now: float, is_up: Callable[[str], bool]
    ) -> Iterator[tuple[str, bool, Frame, Otherwise]]:
        """(peer, its link is up, frame, otherwise) for each frame whose wait is over:
        its peer's link came up, or the start is over.  In the order they came."""
        over = now - self.started >= self.wait
        for peer in list(self._held):
            up = is_up(peer)
            if not up and not over:
                continue
            held = self._held.pop(peer)
            self.count -= len(held)
            for frame, otherwise in held:
                yield peer, up, frame, otherwise

    def clear(self) -> None:
        self._held.clear()
        self.count = 0
