"""Who owns a key among the ready members: buckets placed by rendezvous hashing
(DESIGN.md "Ownership").

Every member computes the same owner from the same view, without talking.  A key
falls in one of ``BUCKETS`` buckets, the low 16 bits of its CRC-32 (as Redis
Cluster's keys fall in 16384 slots by CRC-16), and a bucket belongs to the
member whose score for it is highest (rendezvous, or highest-random-weight,
hashing: Thaler and Ravishankar, 1998).  Next to a ring with virtual nodes it
needs no tuning to spread evenly, and it moves the least possible when the view
changes: a member that joins takes about 1/N of the buckets, all of them from
the others in proportion; a member that leaves hands its buckets out and
nothing else moves.

Why buckets, and why CRC-32: the one-host farm's kernel steering
(:mod:`sipfarm.transport.steering`) places a new request on its Call-ID's owner
before any member reads it, with an eBPF program that can compute a CRC-32 but
not a member's score.  The members give the kernel the owner of every bucket
(:meth:`Ring.table`), and the kernel and the router agree on every key.  65536
buckets keep the spread within about 1 % of what rendezvous over the keys
themselves gives (a member's share of buckets varies by 1.2 % for ten members).

A lookup costs a CRC-32 (C, in zlib) and, the first time a ring sees a bucket,
one integer mix per member (the splitmix64 finalizer over the bucket's hash xor
the member's seed); after that, one list index.  Pure: no I/O, no clock, the
same answer on every machine (no Python ``hash()``, which is salted per
process).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable

__all__ = ["BUCKETS", "Ring", "bucket", "key_hash"]

_MASK = (1 << 64) - 1

#: How many buckets the keys fall in (a power of two: the CRC's low bits).
BUCKETS = 1 << 16


def key_hash(key: bytes | str) -> int:
    """A 64-bit hash of ``key`` that every member computes alike."""
    data = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def bucket(key: bytes | str) -> int:
    """The bucket of ``key``: the low 16 bits of its CRC-32 (IEEE 802.3, as zlib)."""
    data = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key
    return zlib.crc32(data) & (BUCKETS - 1)


def _mix(x: int) -> int:
    """splitmix64's finalizer: every input bit reaches every output bit."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _bucket_hash(b: int) -> int:
    """A bucket's 64-bit hash, which the members' seeds are mixed with."""
    return _mix(b ^ 0x9E3779B97F4A7C15)  # the golden ratio's bits: bucket 0 is no zero


class Ring:
    """The owners of keys among ``members`` (member tokens); immutable, one per view.

    The owner of each bucket is computed the first time it is asked and kept (the
    ring's answer never changes: it is the view's).
    """

    __slots__ = ("_owners", "_seeds", "members")

    def __init__(self, members: Iterable[str]) -> None:
        self.members: tuple[str, ...] = tuple(sorted(set(members)))
        self._seeds: tuple[tuple[int, str], ...] = tuple(
            (key_hash("member:" + m), m) for m in self.members
        )
        self._owners: list[str | None] = [None] * BUCKETS if self.members else []

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, member: object) -> bool:
        return member in self.members

    def owner(self, key: bytes | str) -> str | None:
        """The member that owns ``key``; None when there is no member."""
        if not self.members:
            return None
        b = bucket(key)
        owner = self._owners[b]
        if owner is None:
            owner = self._owners[b] = self._first(b)
        return owner

    def _first(self, b: int) -> str:
        h = _bucket_hash(b)
        best = -1
        owner = ""
        for seed, member in self._seeds:  # members sorted: ties go to the first token
            score = _mix(h ^ seed)
            if score > best:
                best, owner = score, member
        return owner

    def owners(self, key: bytes | str, n: int) -> list[str]:
        """The first ``n`` members in ``key``'s order of preference (owner first, then the
        one that takes over if the owner leaves, and so on)."""
        h = _bucket_hash(bucket(key))
        ranked = sorted(self._seeds, key=lambda sm: (-_mix(h ^ sm[0]), sm[1]))
        return [m for _, m in ranked[:n]]

    def table(self, start: int = 0, stop: int = BUCKETS) -> list[str | None]:
        """The owners of buckets ``start`` to ``stop`` (all of them: some 90 ms a member
        here, so a caller in an event loop asks for them a slice at a time)."""
        if not self.members:
            return [None] * (stop - start)
        owners = self._owners
        for b in range(start, stop):
            if owners[b] is None:
                owners[b] = self._first(b)
        return owners[start:stop]

    def with_member(self, member: str) -> Ring:
        return Ring((*self.members, member))

    def without_member(self, member: str) -> Ring:
        return Ring(m for m in self.members if m != member)

    def __repr__(self) -> str:
        return f"Ring({list(self.members)!r})"
