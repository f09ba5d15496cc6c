"""Membership views (sans-IO): the members of the farm as etcd says, applied in order.

DESIGN.md "Cluster": each member holds a lease and a key ``members/<token>``
with its cluster address, roles and state; the etcd revision of the last
change is the **view number**.  This module is the pure part: a
:class:`View` is immutable, :func:`apply` folds one watched event into the
next view, and the view answers what the rest asks:

- who is **live** (has a lease: joining, ready or not-ready) — the relay targets;
- who is **ready** — the ring that places new work (:mod:`cluster.ring`);
- who is the **controller** and the **backup controller**: the backend members
  in the order they joined (their key's create revision), which is the order
  of an etcd election: the first holds it, the next takes over by itself when
  the first one's lease ends.

States: joining → ready → not-ready (draining) → gone; a member whose lease
ends without saying goodbye is **dead** (its key deleted while not gone).
Dead and gone members leave the view.  An event older than the view (its
revision not above the view's) is ignored, so a replayed watch cannot take
the view back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, NamedTuple

from .ring import Ring

__all__ = [
    "Deleted",
    "MemberInfo",
    "MemberState",
    "Put",
    "View",
    "apply",
    "decode_member",
    "encode_member",
]

ROLES = frozenset({"frontend", "backend"})


class MemberState(enum.Enum):
    JOINING = "joining"
    READY = "ready"
    NOT_READY = "not-ready"
    GONE = "gone"


LIVE = frozenset({MemberState.JOINING, MemberState.READY, MemberState.NOT_READY})


class MemberInfo(NamedTuple):
    """What a member publishes under ``members/<token>``."""

    token: str
    address: tuple[str, int]  # the cluster link's address
    roles: frozenset[str]
    state: MemberState
    created: int  # the create revision of its key: its place in the controller election
    sip: tuple[str, int] | None = None  # where it serves SIP (its own address, not the VIP)
    http: tuple[str, int] | None = None  # its admin endpoint (health, status, drain), if any


class Put(NamedTuple):
    """A member's key was written at ``revision``."""

    revision: int
    member: MemberInfo


class Deleted(NamedTuple):
    """A member's key was deleted at ``revision`` (its lease ended, or it left)."""

    revision: int
    token: str


Event = Put | Deleted


class View(NamedTuple):
    """The farm at one etcd revision."""

    revision: int = 0
    members: Mapping[str, MemberInfo] = {}
    dead: frozenset[str] = frozenset()  # died at this revision (for the edge to act on)

    @property
    def live(self) -> frozenset[str]:
        return frozenset(t for t, m in self.members.items() if m.state in LIVE)

    @property
    def ready(self) -> frozenset[str]:
        return frozenset(t for t, m in self.members.items() if m.state is MemberState.READY)

    def ring(self) -> Ring:
        """The ring of ready members, which places new work."""
        return Ring(self.ready)

    def candidates(self) -> list[str]:
        """Live backend members in election order: controller first, then the backup."""
        backends = [m for m in self.members.values() if "backend" in m.roles and m.state in LIVE]
        return [m.token for m in sorted(backends, key=lambda m: (m.created, m.token))]

    @property
    def controller(self) -> str | None:
        c = self.candidates()
        return c[0] if c else None

    @property
    def backup(self) -> str | None:
        c = self.candidates()
        return c[1] if len(c) > 1 else None


def apply(view: View, event: Event) -> View:
    """The view after ``event``; ``view`` itself when the event is not newer than it."""
    if event.revision <= view.revision:
        return view
    members = dict(view.members)
    dead: frozenset[str] = frozenset()
    if isinstance(event, Put):
        m = event.member
        if m.state is MemberState.GONE:
            members.pop(m.token, None)
        else:
            members[m.token] = m
    else:
        gone = members.pop(event.token, None)
        if gone is not None:
            dead = frozenset({event.token})
    return View(event.revision, members, dead)


# -- the value under members/<token> -----------------------------------------------------


def encode_member(m: MemberInfo) -> dict[str, Any]:
    """The value a member writes (the edge packs it with msgpack)."""
    value: dict[str, Any] = {
        "address": [m.address[0], m.address[1]],
        "roles": sorted(m.roles),
        "state": m.state.value,
    }
    if m.sip is not None:
        value["sip"] = [m.sip[0], m.sip[1]]
    if m.http is not None:
        value["http"] = [m.http[0], m.http[1]]
    return value


def _address(token: str, name: str, value: object) -> tuple[str, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not isinstance(value[0], str)
        or type(value[1]) is not int
        or not 0 < value[1] < 65536
    ):
        raise ValueError(f"member {token}: bad {name} {value!r}")
    return value[0], value[1]


def decode_member(token: str, value: object, created: int) -> MemberInfo:
    """A member from its key's value; ValueError for a value this release cannot read."""
    if not isinstance(value, Mapping):
        raise ValueError(f"member {token}: not a map")
    address = _address(token, "address", value.get("address"))
    roles = value.get("roles")
    state = value.get("state")
    sip = value.get("sip")
    http = value.get("http")
    if not isinstance(roles, list | tuple) or not roles or not set(roles) <= ROLES:
        raise ValueError(f"member {token}: bad roles {roles!r}")
    try:
        member_state = MemberState(state)
    except ValueError:
        raise ValueError(f"member {token}: bad state {state!r}") from None
    return MemberInfo(
        token,
        address,
        frozenset(roles),
        member_state,
        created,
        None if sip is None else _address(token, "sip", sip),
        None if http is None else _address(token, "http", http),
    )
