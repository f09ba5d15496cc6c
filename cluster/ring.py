"""Who owns a key among the ready members: rendezvous hashing (DESIGN.md "Ownership").

Every member computes the same owner from the same view, without talking:
``owner(key)`` is the member whose score for the key is highest (rendezvous, or
highest-random-weight, hashing: Thaler and Ravishankar, 1998).  Next to a ring
with virtual nodes it needs no tuning to spread evenly, and it moves the least
possible when the view changes: a member that joins takes about 1/N of the
keys, all of them from the others in proportion; a member that leaves hands
its keys out and nothing else moves.

A lookup costs one hash of the key and one integer mix per member (the
splitmix64 finalizer over the key's hash xor the member's seed): about 5 µs for
three members and 11 µs for ten here, asked once or twice per call (only
undirected packets are placed by the ring; the rest carry their member's token).  Pure: no I/O, no
clock, the same answer on every machine (no Python ``hash()``, which is salted
per process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["Ring", "key_hash"]

_MASK = (1 << 64) - 1


def key_hash(key: bytes | str) -> int:
    """A 64-bit hash of ``key`` that every member computes alike."""
    data = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _mix(x: int) -> int:
    """splitmix64's finalizer: every input bit reaches every output bit."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class Ring:
    """The owners of keys among ``members`` (member tokens); immutable, one per view."""

    __slots__ = ("_seeds", "members")

    def __init__(self, members: Iterable[str]) -> None:
        self.members: tuple[str, ...] = tuple(sorted(set(members)))
        self._seeds: tuple[tuple[int, str], ...] = tuple(
            (key_hash("member:" + m), m) for m in self.members
        )

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, member: object) -> bool:
        return member in self.members

    def owner(self, key: bytes | str) -> str | None:
        """The member that owns ``key``; None when there is no member."""
        h = key_hash(key)
        best = -1
        owner = None
        for seed, member in self._seeds:  # members sorted: ties go to the first token
            score = _mix(h ^ seed)
            if score > best:
                best, owner = score, member
        return owner

    def owners(self, key: bytes | str, n: int) -> list[str]:
        """The first ``n`` members in ``key``'s order of preference (owner first, then the
        one that takes over if the owner leaves, and so on)."""
        h = key_hash(key)
        ranked = sorted(self._seeds, key=lambda sm: (-_mix(h ^ sm[0]), sm[1]))
        return [m for _, m in ranked[:n]]

    def with_member(self, member: str) -> Ring:
        return Ring((*self.members, member))

    def without_member(self, member: str) -> Ring:
        return Ring(m for m in self.members if m != member)

    def __repr__(self) -> str:
        return f"Ring({list(self.members)!r})"
