"""The nonce-count table of one member: replays of a nonce (RFC 7616 §3.4, §5.5).

RFC 7616 §3.4 ``nc`` counts the requests a client has sent with one nonce; a
server that remembers the highest count per nonce refuses a request whose count is
not higher, which is what stops a captured request from being replayed while its
nonce is still fresh.

The table lives in the memory of one member and is not shared: the farm's nonces are
stateless (:mod:`sipfarm.auth.nonce`) precisely so that a request can land on any
member without a cluster round trip, and sharing every ``nc`` would put that round
trip back on every authenticated request.  A replay sent to *another* member is
therefore caught only by the nonce lifetime; the L4 balancer hashing a client's
flow to one member keeps honest traffic, and most replays, on the member that saw
the original.

Entries live in generations of dicts, so forgetting is O(1) and memory is bounded:
new entries go into ``current``; every ``lifetime + skew`` seconds (when every entry
of ``previous`` belongs to a nonce that is stale anyway) ``previous`` is dropped,
``current`` becomes ``previous``; a full ``current`` rotates early.  A dropped
generation is freed a few entries per call, not in one pause.  After an early
rotation, a nonce issued no later than the latest one of the dropped generation may
have lost its entry; such a nonce seen without an entry is refused (the client
re-authenticates with a new nonce) rather than admitted with a forgotten count.
"""

from __future__ import annotations

__all__ = ["MAX_NONCES", "NonceCounts"]

#: Default bound on the entries held (all generations, those being freed included).
MAX_NONCES = 1_000_000
#: Entries of a dropped generation freed per call.
_FREE_PER_CALL = 4


class NonceCounts:
    """Highest ``nc`` per nonce, and the fingerprint of the request that set it."""

    __slots__ = (
        "_current",
        "_current_issued",
        "_dying",
        "_floor",
        "_generation",
        "_previous",
        "_previous_issued",
        "_rotate_at",
        "lifetime",
        "skew",
    )

    def __init__(self, *, lifetime: float, skew: float, max_nonces: int = MAX_NONCES):
        if max_nonces < 3:
            raise ValueError("max_nonces must be at least 3")
        self.lifetime = lifetime
        self.skew = skew
        self._generation = max_nonces // 3  # current, previous and the one being freed
        self._current: dict[str, tuple[int, int]] = {}
        self._previous: dict[str, tuple[int, int]] = {}
        self._dying: dict[str, tuple[int, int]] = {}
        # the latest issue time of a nonce with an entry in current / previous
        self._current_issued = float("-inf")
        self._previous_issued = float("-inf")
        self._rotate_at = float("-inf")
        #: nonces issued no later than this and without an entry may have lost it: refused
        self._floor = float("-inf")

    def __len__(self) -> int:
        return len(self._current) + len(self._previous) + len(self._dying)

    def admit(self, nonce: str, issued: float, nc: int, fingerprint: int, now: float) -> bool:
        """Record a request with a fresh ``nonce`` and count ``nc``; False for a replay.

        A count higher than any seen for the nonce is admitted and recorded.  The same
        count again is admitted only with the same ``fingerprint`` (a retransmission of
        the request that set it); anything else is refused.
        """
        dying = self._dying
        if dying:
            for _ in range(min(_FREE_PER_CALL, len(dying))):
                dying.popitem()
        if now > self._rotate_at:
            self._rotate(now, early=False)
        table = self._current
        entry = table.get(nonce)
        if entry is None:
            table = self._previous
            entry = table.get(nonce)
        if entry is None:
            if issued <= self._floor:
                return False
            if len(self._current) >= self._generation:
                self._rotate(now, early=True)
            self._current[nonce] = (nc, fingerprint)
            if issued > self._current_issued:
                self._current_issued = issued
            return True
        seen, seen_fingerprint = entry
        if nc > seen:
            table[nonce] = (nc, fingerprint)
            return True
        return nc == seen and fingerprint == seen_fingerprint

    def _rotate(self, now: float, *, early: bool) -> None:
        if early:  # ``previous`` may hold fresh nonces: forget them for good
            self._floor = max(self._floor, self._previous_issued)
        self._dying = self._previous  # one left from a quiet spell is simply dropped
        self._previous = self._current
        self._previous_issued = self._current_issued
        self._current = {}
        self._current_issued = float("-inf")
        # a nonce with an entry made before ``now`` is stale by then
        self._rotate_at = now + self.lifetime + self.skew
