"""Which member holds each phone's flow (sans-IO; DESIGN.md "Ownership").

Behind an L4 balancer a phone's packets reach the farm through one member at
a time: the balancer's conntrack pins a UDP flow to the member it chose, and a
TCP connection lives in one process.  Whatever the farm sends to that phone must
leave from that member: from another, the balancer would not turn the
member's address back into the VIP (UDP), or there is no connection (TCP).

So every member keeps this table of who holds each flow: itself for what it
received, others as learnt from the packets relayed to it (a relay names the
member that received it) and from the bindings it looks up (a binding names the
member its REGISTER came through).  A flow nobody is known to hold (a phone
whose holder died: the balancer forgot its flow with it) is claimed by one
member all agree on (:meth:`sipfarm.farm.Farm.dispatch`), so that two members
never open two flows to one phone, which the balancer's SNAT cannot tell apart.
The table forgets: it is two generations of dicts, the older dropped when the
younger fills, so it holds the flows seen lately and costs one dict operation
per packet.
"""

from __future__ import annotations

__all__ = ["FlowKey", "Flows"]

#: (transport, host, port) of the phone: a Source, or a Send's transport and address.
FlowKey = tuple[str, str, int]


class Flows:
    """Flow → the token of the member that holds it (this member's own included)."""

    __slots__ = ("_old", "_young", "limit", "me")

    def __init__(self, me: str, limit: int = 500_000) -> None:
        self.me = me
        self.limit = limit  # entries per generation
        self._young: dict[FlowKey, str] = {}
        self._old: dict[FlowKey, str] = {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def held_by(self, key: FlowKey, member: str) -> None:
        """A packet of ``key`` reached the farm through ``member``."""
        young = self._young
        young[key] = member
        if len(young) >= self.limit:
            self._old = young
            self._young = {}

    def mine(self, key: FlowKey) -> None:
        """A packet of ``key`` reached the farm through this member (or left from it)."""
        if self._young.get(key) is not self.me:
            self.held_by(key, self.me)

    def holder(self, key: FlowKey) -> str | None:
        """The member holding ``key`` (perhaps this one), or None when nobody is known to."""
        member = self._young.get(key)
        if member is None:
            member = self._old.get(key)
        return member

    def drop(self, member: str) -> int:
        """``member`` left the farm: its flows are nobody's now (the balancer moves them)."""
        dropped = 0
        for table in (self._young, self._old):
            gone = [k for k, v in table.items() if v == member]
            for k in gone:
                del table[k]
            dropped += len(gone)
        return dropped

    def clear(self) -> None:
        """This member was dead for the farm: the balancer forgot the flows it held."""
        self._young = {}
        self._old = {}
