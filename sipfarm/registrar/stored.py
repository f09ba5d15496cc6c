"""Bindings kept on the shared storage, with memory as their cache (DESIGN.md "Account store").

In a farm a binding lives with the owner of its AOR, and the owner changes when
members join, drain or die.  So that a new owner has every binding that was
acknowledged, a store writes the AOR's bindings to the account's storage
(through :class:`BindingStorage`) *before* it returns, that is before the
registrar's 200 OK leaves; memory is a cache the owner fills from storage the
first time it is asked about an AOR, and reloads every AOR once after each change
of ownership (:meth:`StoredLocation.invalidate`), so that it never serves what
another owner may have changed meanwhile.

Each binding is stored with the token of the member that holds its flow (the
member whose socket the REGISTER arrived on), so that any member can reach a
phone through the member its NAT and the balancer's conntrack know
(:mod:`sipfarm.flows`).  The record is a list of plain values, written as JSON
on storage and as msgpack on the cluster link.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..actions import Source
from ..sip.errors import SipError
from .binding import Binding
from .location import MemoryLocation

__all__ = [
    "BindingStorage",
    "StoredLocation",
    "binding_from_record",
    "binding_record",
    "decode_bindings",
    "encode_bindings",
]

#: The version of the stored form; a reader refuses another (ValueError).
FORMAT = 1


class BindingStorage(Protocol):
    """Where an AOR's bindings are kept between owners (the account's info file)."""

    def read(self, aor: str) -> list[tuple[Binding, str | None]]: ...

    def write(self, aor: str, bindings: Sequence[Binding]) -> None: ...


def binding_record(b: Binding, holder: str | None) -> list[Any]:
    """One binding and its flow's holder as a list of plain values."""
    return [
        b.contact,
        b.q,
        b.expires_at,
        b.call_id,
        b.cseq,
        list(b.path),
        [b.source.transport, b.source.host, b.source.port],
        b.instance,
        b.reg_id,
        b.registered_at,
        holder,
    ]


def binding_from_record(r: object) -> tuple[Binding, str | None]:
    """The inverse of :func:`binding_record`; ValueError for anything else."""
    bad = ValueError(f"not a binding record: {r!r:.200}")
    if not isinstance(r, list | tuple) or len(r) != 11:
        raise bad
    contact, q, expires_at, call_id, cseq, path, source, instance, reg_id, at, holder = r
    if not (
        isinstance(contact, str)
        and isinstance(call_id, str)
        and type(cseq) is int
        and (q is None or isinstance(q, int | float))
        and isinstance(expires_at, int | float)
        and isinstance(at, int | float)
        # json reads NaN and Infinity: a binding that would never expire, and whose
        # ";expires=" the registrar could not write (int(inf) raises)
        and math.isfinite(expires_at)
        and math.isfinite(at)
        and isinstance(path, list | tuple)
        and all(isinstance(p, str) for p in path)
        and isinstance(source, list | tuple)
        and len(source) == 3
        and isinstance(source[0], str)
        and isinstance(source[1], str)
        and type(source[2]) is int
        and (instance is None or isinstance(instance, str))
        and (reg_id is None or type(reg_id) is int)
        and (holder is None or isinstance(holder, str))
    ):
        raise bad
    transport, host, port = source
    binding = Binding(
        contact,
        None if q is None else float(q),
        float(expires_at),
        call_id,
        cseq,
        tuple(path),
        Source(transport, host, port),
        instance,
        reg_id,
        float(at),
    )
    return binding, holder


def encode_bindings(records: Sequence[tuple[Binding, str | None]]) -> bytes:
    """The stored form of an AOR's bindings (JSON: readable by an operator)."""
    body = {"format": FORMAT, "bindings": [binding_record(b, h) for b, h in records]}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_bindings(data: bytes) -> list[tuple[Binding, str | None]]:
    """The bindings of :func:`encode_bindings`; ValueError for a damaged or foreign file."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except RecursionError:  # garbage such as b"[[[[…": json recurses per level
        raise ValueError("not JSON: nested too deep") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError("not a bindings record of format 1")
    records = body.get("bindings")
    if not isinstance(records, list):
        raise ValueError("no bindings list")
    return [binding_from_record(r) for r in records]


class StoredLocation:
    """The :class:`~sipfarm.registrar.Location` of the AORs this member owns.

    Reads come from memory once the AOR is loaded; a store goes to storage
    first, then to memory.  Expiry runs on memory (the stored copy of an
    expired binding is filtered out when it is next loaded, and rewritten with
    the AOR's next store).
    """

    __slots__ = ("_epoch", "_loaded", "memory", "storage")

    def __init__(self, storage: BindingStorage) -> None:
        self.storage = storage
        self.memory = MemoryLocation()
        self._loaded: dict[str, int] = {}  # AOR → the epoch it was loaded or stored in
        self._epoch = 0

    def __len__(self) -> int:
        return len(self.memory)

    def _load(self, aor: str) -> None:
        if self._loaded.get(aor) != self._epoch:
            self.memory.store(aor, [b for b, _ in self.storage.read(aor)])
            self._loaded[aor] = self._epoch

    def lookup(self, aor: str, now: float) -> list[Binding]:
        self._load(aor)
        return self.memory.lookup(aor, now)

    def bindings(self, aor: str) -> list[Binding]:
        self._load(aor)
        return self.memory.bindings(aor)

    def store(self, aor: str, bindings: Sequence[Binding]) -> None:
        self.storage.write(aor, bindings)  # raises: then no 200 OK goes out
        self.memory.store(aor, bindings)
        self._loaded[aor] = self._epoch

    def expire(
        self,
        now: float,
        budget: int,
        owns: Callable[[str], bool] | None = None,
        failed: list[str] | None = None,
    ) -> int:
        """Remove expired bindings from memory; and from storage too for the AORs ``owns``
        says are ours and whose memory is the truth (loaded since the last ownership
        change): an AOR whose phone stopped refreshing is not left on storage with a
        binding that has long expired.  A write that fails is named in ``failed`` (the
        edge logs it); the stored copy is filtered when it is next loaded anyway."""
        changed: list[str] = []
        removed = self.memory.expire(now, budget, changed)
        for aor in changed:
            if owns is None or not owns(aor) or self._loaded.get(aor) != self._epoch:
                continue
            try:
                self.storage.write(aor, self.memory.bindings(aor))
            except (SipError, OSError) as exc:
                if failed is not None:
                    failed.append(f"{aor}: {exc!r}")
        return removed

    def forget(self, aor: str) -> None:
        """Read ``aor`` from storage again when next asked (provisioning changed it)."""
        self._loaded.pop(aor, None)

    def invalidate(self) -> None:
        """Ownership changed: each AOR is read from storage again when next asked.

        O(1) at the change (a view change must not stall the member for a pass
        over 100k AORs); the cost is one read per AOR afterwards.  An AOR this
        member no longer owns is not asked of it (the farm asks its owner), and
        its bindings in memory go with their expiry.
        """
        self._epoch += 1
