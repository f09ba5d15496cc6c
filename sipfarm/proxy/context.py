"""The response context of a proxied request and its branches (RFC 3261 §16.7)."""

from __future__ import annotations

from ..sip.message import Request, Response
from ..transaction.layer import ClientEntry, ServerEntry

__all__ = ["Branch", "ResponseContext", "best_response"]

#: §16.7 step 6: within the 4xx class, responses that let the caller resubmit win.
_INFORMATIVE = (401, 407, 415, 420, 484)


class Branch:
    """One target of a forked request: its client transaction and what it answered."""

    __slots__ = (
        "cancel_sent",
        "cancel_wanted",
        "client",
        "context",
        "final",
        "flow",
        "provisional",
        "request",
    )

    def __init__(self, context: ResponseContext, request: Request, flow: bool) -> None:
        self.context = context
        self.request = request
        self.flow = flow  # sent on a registered flow (RFC 5626): 430 when it is gone
        self.client: ClientEntry | None = None
        self.provisional = False
        self.final: Response | int | None = None  # a response, or a status we made up
        self.cancel_wanted = False
        self.cancel_sent = False


class ResponseContext:
    """A request being proxied (§16.7): the server transaction and the branches.

    ``done`` once a final response went upstream (a 2xx or the best of all
    branches); later 2xx still go up (§16.7 step 5), nothing else does.
    """

    __slots__ = ("branches", "done", "request", "server", "timer_c")

    def __init__(self, server: ServerEntry, request: Request) -> None:
        self.server = server
        self.request = request
        self.branches: list[Branch] = []
        self.done = False
        # The running timer C's heap entry holds this box, not the context: stopping it
        # empties the box, so a stopped timer keeps nothing alive for its 3 minutes.
        self.timer_c: list[ResponseContext | None] | None = None

    def pending(self) -> list[Branch]:
        return [b for b in self.branches if b.final is None]


def _rank(status: int) -> tuple[int, int]:
    """Smaller is better (§16.7 step 6)."""
    if status >= 600:
        return (0, 0)
    cls = status // 100
    informative = 0 if cls == 4 and status in _INFORMATIVE else 1
    if status in (408, 503):
        informative = 2  # made-up or transient: the least telling of its class
    return (cls, informative)


def best_response(branches: list[Branch]) -> Response | int:
    """The final response to send upstream once every branch has one (§16.7 step 6).

    A 6xx wins, else the lowest class; in 4xx, 401/407/415/420/484 first.  No
    response at all means 408.  The caller turns a 503 into 500.
    """
    finals = [b.final for b in branches if b.final is not None]
    if not finals:
        return 408
    return min(finals, key=lambda r: _rank(r if isinstance(r, int) else r.status))
