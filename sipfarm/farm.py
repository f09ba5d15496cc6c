"""The member in its farm (asyncio edge): membership, cluster link, router, relays.

DESIGN.md "Ownership" and "Cluster".  A member started with ``--etcd`` puts a
:class:`Farm` between its sockets and its SIP core:

- **Every packet** it receives is placed by :func:`sipfarm.router.place` over
  the current view; another member's work is relayed to it over the cluster
  link as a :class:`~cluster.frames.Relay` (the packet's bytes, source and
  transport, and this member's token).  The owner feeds it to its core as if
  it had arrived there, and never relays it on (hop count: a relayed packet is
  always served where it lands).  When the link to the owner is down the
  packet is served here: any member can serve any packet, the owner only has
  the state that makes it cheaper.  A new request served so is sent on as its
  owner sent it, or would have (:meth:`Farm._acting`): the callee must see the
  caller's retransmission as one, not as a second INVITE of the call.
- **Every send** goes out through the member that holds the destination's flow
  (:mod:`sipfarm.flows`): the owner of a relayed request hands its answer back
  to the receiving member as an :class:`~cluster.frames.Emit`, because behind a
  DNAT balancer only that member's packets are turned back into the VIP, and a
  TCP connection lives in one process.  Members bound to the same address (one
  host, ``sipfarm up``: SO_REUSEPORT) send UDP for each other directly, from
  the same address; TCP still goes through the holder.
- **Bindings** live with the ring owner of their AOR (:class:`FarmLocation`):
  REGISTER is placed there by the router, and written to the account's storage
  before its 200 OK; another member that needs an AOR's bindings to route a
  call asks the owner over the link (a ``lookup`` call) before its core sees
  the request, and reads the storage itself when the owner cannot answer.
- **Provisioning** (the HTTP API) writes an account through its ring owner and a
  domain through the controller: the member that received the request makes a
  ``provision`` call (:meth:`Farm.ask`) and answers what the writer answered; the
  writer tells every member what changed (``changed``: their caches drop it).
- **Views** come from etcd in revision order.  A new ring keeps the previous
  one for 64*T1 (the hand-off window of the router); every owner reads its AORs
  from storage again (what another owner wrote meanwhile).
- **Losing etcd**, or finding itself dead in the view (frozen past its lease),
  the member stops taking new undirected work: its core answers new
  out-of-dialog requests 503 and its health probes 503, so the balancer takes
  it out.  Its lease is gone or going, so the others count it dead and take
  over its work (the callers' retransmissions reach them): it drops its own
  transactions, which would otherwise ring callees twice once it is back.
  It re-registers with a fresh lease when etcd answers, and serves again once
  a view names it ready.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.etcd import EtcdMembership
from cluster.frames import Emit, Frame, Relay, Request, Response
from cluster.link import Links
from cluster.membership import MemberState
from cluster.membership import View as MembershipView
from cluster.ring import BUCKETS, Ring
from mail.commit import GroupCommit
from mail.errors import AccountStoreError, AccountUnreadable
from mail.store import AccountStore, write_atomic

from .actions import Drop, Send, Source
from .core import CHALLENGED, callee_aor
from .flows import Flows
from .registrar import Binding, StoredLocation, aor_of, rank
from .registrar.stored import (
    binding_from_record,
    binding_record,
    decode_bindings,
    encode_bindings,
)
from .router import HANDOFF, INVITE_HANDOFF, View, place
from .sip import Request as SipRequest
from .sip import SipError, parse
from .sip.errors import ServerInternalError
from .sip.nameaddr import parse_nameaddr
from .sip.peek import Peek, peek
from .sip.uri import SipUri, parse_uri
from .transport.steering import Enlisted
from .unlinked import Unlinked

logger = logging.getLogger(__name__)

__all__ = ["AccountBindings", "CallFailed", "Farm", "FarmLocation", "Unreachable"]

#: Bucket x member scores a member computes between two turns of its event loop.
OWNERS_SLICE = 4096

#: How long a member waits for the owner's answer to a lookup before reading storage.
LOOKUP_TIMEOUT = 0.5
#: How long a lookup's answer is reused (retransmissions, forks of one request).
LOOKUP_TTL = 2.0
#: Seconds after a freeze during which what arrives is taken as stale (the waiting burst).
STALE = 0.05
#: Seconds a stopping member keeps its links after leaving the view (relays in flight).
STOP_GRACE = 0.5
#: … and at most this long more while its transactions at work end.
STOP_WAIT = 5.0
#: Seconds the others keep the link of a member that left the view: a drained member
#: that stops still receives, until the balancer forgets its flows, the answers to the
#: others' transactions (a callee's 200 on the flow it holds), and relays them to their
#: owners.  Closed at once, those answers went out statelessly and their transactions
#: waited for timer C (3 min), holding the owner's drain that long.
LINK_LINGER = STOP_GRACE + STOP_WAIT + 1.0
#: The longest a new owner waits for the others to confirm a view before it writes the
#: AORs that view gave it (the lease: a member that cannot answer by then is dead for
#: etcd, or frozen, and drops its work when it wakes, before writing anything).
FENCE_TIMEOUT = 2.0
#: … and asks again the peers that have not answered after this long (a request sent on
#: a connection that was closing is lost with it).
FENCE_RESEND = 0.5
#: The longest a joining member waits for its links to the members in its view before it
#: says it is ready (a ready member gets relays at once; a link still dialing refuses
#: them, and they are served elsewhere).  A peer that cannot be reached does not hold the
#: join longer than this.  It is also how long after its start a member holds the frames
#: for peers it has not linked with yet (sipfarm.unlinked).
JOIN_LINKS_WAIT = 2.0
#: REGISTERs held while the fence is up; more get no answer (the phone retransmits).
FENCE_PARKED = 10_000
#: Frames a starting member holds for peers it has not linked with yet (sipfarm.unlinked);
#: more go the way of an unreachable member's.
UNLINKED_HELD = 10_000
#: Re-INVITEs relayed from a member that it remembers, for the ACK of a non-2xx answer to
#: one (``Farm._reinvites``); more are not remembered, and such an ACK is then forwarded
#: like the ACK of a 2xx (its transaction retransmits its answer until Timer H).
REINVITES_MAX = 100_000
#: Requests that may need the callee's bindings (a new out-of-dialog request).
NO_LOOKUP = frozenset({b"ACK", b"CANCEL", b"REGISTER", b"BYE", b"PRACK"})

#: New requests whose stateless answer (a challenge …) the member they land on gives
#: itself rather than relay them (SipCore.gate).
GATED = frozenset(m.encode() for m in CHALLENGED) | {b"REGISTER"}
#: New requests a member may serve for another (Farm._acting): those the proxy forwards.
ACTED = frozenset({b"INVITE", b"MESSAGE", b"OPTIONS", b"SUBSCRIBE", b"REFER", b"NOTIFY"})

_TO = re.compile(rb"\n(?:to|t)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_CREDENTIALS = re.compile(rb"\n(?:proxy-)?authorization[ \t]*:", re.IGNORECASE)


class Unreachable(Exception):
    """The member a call is for cannot be asked: its link is down or silent, or it left."""


class CallFailed(Exception):
    """The member asked answered with an error."""


class BindingsNotSaved(SipError):
    """The account's storage refused the write: no 200 OK for bindings not kept."""

    status = 500
    default_reason = "Bindings Not Saved"


def register_key(data: bytes) -> bytes | None:
    """The AOR of a REGISTER (its To URI, canonical), or None when it cannot be read.

    Folded to lower case, as :meth:`Farm.owns` folds it: the account store's
    names are (``Alice`` and ``alice`` are one account, so one owner).
    """
    found = _TO.search(data)
    if found is None:
        return None
    try:
        return aor_of(parse_nameaddr(found.group(1).decode("utf-8")).uri).lower().encode()
    except (SipError, UnicodeDecodeError, ValueError):
        return None


def _split_aor(aor: str) -> tuple[str, str] | None:
    """``sip:user@domain`` → (user, domain); None for an AOR without a user."""
    if not aor.startswith("sip:") or "@" not in aor:
        return None
    user, _, domain = aor[4:].rpartition("@")
    return user, domain


def _keep_damaged(path: Path, data: bytes) -> Path | None:
    """Keep a damaged file's bytes beside it (``<name>.damaged``) for the operator: the
    next write of the account replaces the file.  Once: the first damage seen is kept."""
    aside = path.with_name(path.name + ".damaged")
    if aside.exists():
        return aside
    try:
        write_atomic(aside, data)
    except OSError as exc:
        logger.warning("cannot keep the damaged %s: %s", path, exc)
        return None
    return aside


class AccountBindings:
    """:class:`~sipfarm.registrar.stored.BindingStorage` on the account store's info files.

    A binding is stored with the member that held the phone's flow, as
    ``token@incarnation`` (the create revision of that member's key in etcd): a
    member that died and came back under the same token does not hold the flows
    of its previous life (the balancer forgot them), so a reader believes a
    holder only in the incarnation that wrote it.
    """

    def __init__(
        self, store: AccountStore, flows: Flows, me: str, commit: GroupCommit | None = None
    ) -> None:
        self.store = store
        self.flows = flows
        self.me = me
        self.commit = commit if commit is not None else GroupCommit()
        self.counters: dict[str, int] = {}
        self.incarnation: Callable[[str], int | None] = lambda token: None

    def read(self, aor: str) -> list[tuple[Binding, str | None]]:
        names = _split_aor(aor)
        if names is None:
            return []
        try:
            found = self.store.read_info_where(*names)
        except (AccountStoreError, OSError) as exc:
            logger.warning("bindings of %s unreadable: %s", aor, exc)
            return []
        if found is None:
            return []
        path, data = found
        try:
            records = decode_bindings(data)
        except ValueError as exc:  # a damaged file: served as empty, logged, rewritten next
            self.counters["bindings_damaged"] = self.counters.get("bindings_damaged", 0) + 1
            kept = _keep_damaged(path, data)
            logger.error(
                "bindings of %s damaged, ignored until rewritten: %s: %s%s",
                aor,
                path,
                exc,
                f" (its bytes kept in {kept})" if kept else "",
            )
            return []
        for b, holder in records:  # where the phone's flow is, as last seen
            token, _, life = (holder or "").partition("@")
            if (
                life.isdigit()
                and self.incarnation(token) == int(life)
                and self.flows.holder(b.source) is None
            ):
                self.flows.held_by(b.source, token)
        return records

    def write(self, aor: str, bindings: Sequence[Binding]) -> None:
        names = _split_aor(aor)
        if names is None:
            raise BindingsNotSaved("No Account For This Address")
        records = [(b, self._holder(b.source)) for b in bindings]
        try:
            path = self.store.write_info(*names, encode_bindings(records), writer=self.me)
        except (AccountStoreError, OSError) as exc:
            logger.error("bindings of %s not written: %s", aor, exc)
            raise BindingsNotSaved() from None
        self.commit.written(path)  # the 200 OK waits for it (Farm.dispatch)
        self.counters["bindings_written"] = self.counters.get("bindings_written", 0) + 1

    def _holder(self, source: Source) -> str | None:
        token = self.flows.holder(source)
        life = self.incarnation(token) if token is not None else None
        return None if token is None or life is None else f"{token}@{life}"


class FarmLocation:
    """The :class:`~sipfarm.registrar.Location` a farm member's core sees.

    AORs this member owns are served by its :class:`StoredLocation`; for the
    others, the answer the owner gave to the last ``lookup`` (the edge asks
    before the core runs), else what storage says.
    """

    def __init__(self, stored: StoredLocation, owns: Callable[[str], bool]) -> None:
        self.stored = stored
        self.owns = owns
        self.answers: dict[str, tuple[float, list[Binding]]] = {}  # aor → (when, bindings)

    def __len__(self) -> int:
        return len(self.stored)

    def lookup(self, aor: str, now: float) -> list[Binding]:
        if self.owns(aor):
            return self.stored.lookup(aor, now)
        answer = self.answers.get(aor)
        found = answer[1] if answer is not None else self.read(aor)
        return sorted((b for b in found if b.expires_at > now), key=rank)

    def bindings(self, aor: str) -> list[Binding]:
        return self.stored.bindings(aor) if self.owns(aor) else self.read(aor)

    def store(self, aor: str, bindings: Sequence[Binding]) -> None:
        if self.owns(aor):
            self.stored.store(aor, bindings)
        else:  # the owner was out of reach: storage is the truth, memory is the owner's
            self.stored.storage.write(aor, bindings)
            self.answers.pop(aor, None)

    def expire(self, now: float, budget: int) -> int:
        stale = [aor for aor, (at, _) in self.answers.items() if now - at > LOOKUP_TTL]
        for aor in stale:
            del self.answers[aor]
        failed: list[str] = []
        removed = self.stored.expire(now, budget, self.owns, failed)
        for what in failed:
            logger.warning("expired bindings not removed from storage: %s", what)
        return removed

    def read(self, aor: str) -> list[Binding]:
        """What storage holds for ``aor`` (when its owner cannot be asked)."""
        return [b for b, _ in self.stored.storage.read(aor)]


@dataclass(slots=True)
class _Fence:
    """An ownership fence that is up (Farm._fence_up): the view it waits for, the peers
    yet to confirm it, the calls that asked them, and the REGISTERs it holds (the
    newest of each Call-ID)."""

    revision: int
    waiting: set[str]
    deadline: float
    resend_at: float
    calls: dict[int, str] = field(default_factory=dict)  # call id → peer
    held: dict[bytes, tuple[int, bytes, Source]] = field(default_factory=dict)


class Farm:
    """One member's place in the farm; see the module docstring."""

    def __init__(
        self,
        token: str,
        core: Any,  # sipfarm.core.SipCore (its location is a FarmLocation)
        flows: Flows,
        location: FarmLocation,
        send: Callable[[list[Send]], None],
        *,
        storage: AccountBindings,
        drain: Callable[[], int] = lambda: 0,
        cluster: tuple[str, int],
        etcd: tuple[str, int],
        roles: frozenset[str],
        farm_addresses: frozenset[bytes],
        sip: tuple[str, int] | None = None,
        http: tuple[str, int] | None = None,
    ) -> None:
        self.me = token
        self.core = core
        self.flows = flows
        self.location = location
        self._send = send  # the member's sockets
        self._drain = drain  # discards what waits in the member's UDP socket
        storage.incarnation = self._incarnation
        self.commit = storage.commit
        self.cluster = cluster
        self.farm_addresses = farm_addresses
        self.sip = sip
        self._same_socket: frozenset[str] = frozenset()  # members bound where we are
        self.steered: Enlisted | None = None  # the kernel's steering of packets, if any
        self._owners: asyncio.Task[None] | None = None  # the ring going to the kernel
        self.links = Links(token, self)
        self.membership = EtcdMembership(
            token, cluster, roles, etcd, self._view, on_lost=self._lost, sip=sip, http=http
        )
        self.view = MembershipView()
        self.route = View(token, frozenset(), Ring(()), farm_addresses)
        self.counters: dict[str, int] = {}
        self.admin_ready = True  # the operator's wish (POST /ready, /not-ready)
        self._ids = itertools.count(1)
        self._calls: dict[int, tuple[str, float]] = {}  # id → (aor, deadline)
        self._waiting: dict[int, tuple[str, asyncio.Future[Any]]] = {}  # id → (peer, answer)
        # Provisioning sent here by the member that received it (we write its subject),
        # and the others' word that they changed an account or a domain (node.Member).
        self.on_provision: Callable[[str, str, bytes], Coroutine[Any, Any, Any]] | None = None
        self.on_changed: Callable[[str, str | None], None] | None = None
        self._parked: dict[str, list[tuple[bytes, Source]]] = {}
        # The ownership fence (see _fence_up) while it is up; the confirmations we owe.
        self._fence: _Fence | None = None
        self._owed: list[tuple[str, int, int]] = []  # (peer, call id, view)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_tick = 0.0
        self._stale_until = 0.0
        # Counts the freezes past the lease and the losses of etcd: what waited behind
        # a group commit across one of them is stale (see dispatch).
        self._epoch = 0
        self.stopping = False  # Farm.stop() began: new work goes to the others
        self._joining_since: float | None = None  # until the links are up (JOIN_LINKS_WAIT)
        # Frames for live peers this member has not linked with yet (sipfarm.unlinked).
        self._unlinked = Unlinked(time.monotonic(), JOIN_LINKS_WAIT, UNLINKED_HELD)
        # Branch -> (member, until) of the re-INVITEs relayed from here, for HANDOFF
        # (64*T1): the ACK of a non-2xx answer to one carries its branch and goes to its
        # transaction, where every other ACK on a route set is forwarded where it
        # lands (router rule 2).  The balancer keeps a flow on one member, so the ACK
        # lands where its re-INVITE did.
        self._reinvites: dict[bytes, tuple[str, float]] = {}
        self._died: dict[str, float] = {}  # members that died (not left), and when
        self._publishing = False
        self.received = 0  # packets from this member's sockets (the relay ratio's base)
        core.accepting = False  # until a view names this member
        core.ready = False

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        host, port = await self.links.listen(*self.cluster)
        self.cluster = (host, port)
        self.membership.address = (host, port)
        await self.membership.start(MemberState.JOINING)

    async def stop(self) -> None:
        """Leave the view, let relays on their way arrive and the transactions at work end
        (an in-dialog request that came after the drain; at most STOP_WAIT), then close
        the links.

        From the first step on, a new request this member would serve itself goes to
        the member that takes its Call-ID once this one is gone, or, when none can be
        reached, a UDP one is dropped (the caller retransmits; the balancer moves the
        flow once this member stops answering its probes): a 503 here would end a call
        that any other member would have put through (the rolling update).
        """
        self.stopping = True
        if self._owners is not None:
            self._owners.cancel()
        await self.membership.stop()
        await asyncio.sleep(STOP_GRACE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_WAIT
        while self.core.layer.active() and loop.time() < deadline:
            await asyncio.sleep(0.1)
        await self.links.close()

    def _incarnation(self, token: str) -> int | None:
        member = self.view.members.get(token)
        return member.created if member is not None else None

    def set_ready(self, ready: bool) -> None:
        """The operator drains the member (or puts it back): out of the ring, probes 503."""
        self.admin_ready = ready
        self._serve()
        self._publish()

    def _publish(self) -> None:
        me = self.view.members.get(self.me)
        want = MemberState.READY if self.admin_ready else MemberState.NOT_READY
        if self.membership.lost or (me is not None and me.state is want):
            return
        if me is None and self.view.revision == 0:
            return  # not registered yet
        if (
            me is not None
            and me.state is MemberState.JOINING
            and want is MemberState.READY
            and not self._links_ready()
        ):
            return  # tick() asks again
        if self._publishing:
            return
        self._publishing = True
        task = asyncio.get_running_loop().create_task(self._set_state(want))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _links_ready(self) -> bool:
        """Whether this joining member's links to the others are up (or it waited enough)."""
        now = time.monotonic()
        if self._joining_since is None:
            self._joining_since = now
        missing = sorted(t for t in self.view.live if t != self.me and not self.links.is_up(t))
        if not missing:
            return True
        if now - self._joining_since < JOIN_LINKS_WAIT:
            return False
        logger.warning("ready without links to %s (still dialing)", ", ".join(missing))
        return True

    async def _set_state(self, state: MemberState) -> None:
        try:
            await self.membership.set_state(state)
        except Exception as exc:  # etcd away: the keepalive notices and re-registers
            logger.warning("cannot publish state %s: %s", state.value, exc)
        finally:
            self._publishing = False  # a wish changed meanwhile: the next view publishes it

    def _serve(self) -> None:
        """Whether the core takes new work and answers its probes 200."""
        me = self.view.members.get(self.me)
        known = me is not None and not self.membership.lost
        self.core.accepting = known
        self.core.ready = known and self.admin_ready

    # -- views ---------------------------------------------------------------------------

    def _view(self, view: MembershipView) -> None:
        old = self.view
        self.view = view
        for token, member in view.members.items():
            if token != self.me:
                self.links.want(token, member.address)
        gone = [token for token in old.members if token not in view.members]
        for peer, future in list(self._waiting.values()):
            if peer not in view.members and not future.done():
                future.set_exception(Unreachable(f"{peer} left the farm"))
        if gone:  # not at once: a stopping member still relays what its flows bring
            asyncio.get_running_loop().call_later(LINK_LINGER, self._forget, gone)
        now = time.time()
        for token in view.dead:  # the balancer forgets a dead member's flows; we do too
            self.flows.drop(token)
            self._died[token] = now
        for token, when in list(self._died.items()):  # back (a restart), or long ago
            if token in view.members or when + HANDOFF < now:
                del self._died[token]
        if self.steered is not None:
            self._steer(view)
        self._same_socket = frozenset(
            t for t, m in view.members.items() if m.sip is not None and m.sip == self.sip
        )
        ring = view.ring()
        route = self.route
        # Our Via names the advertised address (the VIP); members reached on their
        # own addresses put those in their Via: both are the farm's.
        farm = self.farm_addresses | {
            f"{m.sip[0]}:{m.sip[1]}".lower().encode() for m in view.members.values() if m.sip
        }
        if farm != route.farm:
            route = route._replace(farm=frozenset(farm))
        if ring.members != route.ring.members:
            self.route = View(self.me, view.live, ring, route.farm, route.ring, now + HANDOFF)
            self.location.stored.invalidate()
            logger.info(
                "view %d: ring %s (was %s)",
                view.revision,
                sorted(ring.members),
                sorted(route.ring.members),
            )
            self._fence_up(view.revision)
            if self.steered is not None:
                self._steer_requests(ring)
        else:
            self.route = route._replace(live=view.live)
        if self._owed:
            self._confirm()
        if self.me not in view.members and old.revision and self.me in old.members:
            logger.warning("view %d: this member is not in the farm any more", view.revision)
        self._serve()
        self._publish()

    def _steer(self, view: MembershipView) -> None:
        """The kernel steers no response to a dead member (a frozen process still holds
        its socket: they would wait there), and steers ours here again once we are back."""
        steered = self.steered
        assert steered is not None
        try:
            for token in view.dead:
                if steered.withdraw(token):
                    logger.info("view %d: responses for %s no longer steered", view.revision, token)
            if self.me in view.live:
                steered.enlist()
        except OSError as exc:
            logger.warning("kernel steering: %s; it is off", exc)
            self.steered = None

    def _steer_requests(self, ring: Ring) -> None:
        """Give the kernel the owner of every bucket of this ring (each member does, on
        every change: they write the same once their views agree)."""
        if self._owners is not None:
            self._owners.cancel()
        self._owners = asyncio.get_running_loop().create_task(self._publish_owners(ring))

    async def _publish_owners(self, ring: Ring) -> None:
        table: list[str | None] = []
        step = max(64, OWNERS_SLICE // max(1, len(ring)))  # some 2 ms of work between packets
        for start in range(0, BUCKETS, step):  # (65536 buckets: 90 ms a member here)
            table += ring.table(start, min(start + step, BUCKETS))
            await asyncio.sleep(0)
        steered = self.steered
        if steered is None or ring is not self.route.ring:
            return
        try:
            steered.publish(table)
        except OSError as exc:
            logger.warning("kernel steering of requests: %s", exc)
            return
        logger.info("kernel steering: requests placed on the ring of %s", sorted(ring.members))

    def _forget(self, gone: list[str]) -> None:
        """Close the links of members that left the view LINK_LINGER ago (unless back)."""
        for token in gone:
            if token not in self.view.members:
                self.links.forget(token)

    # -- the ownership fence: one writer per account ------------------------------------

    def _fence_up(self, revision: int) -> None:
        """A ring change moved AORs: write none of those this member gained until every
        other live member confirms it applied this view (an ``applied`` call).

        A member writes an AOR only while its own ring names it the owner, and
        applies views in revision order, each in one pass of its loop (a write is
        done within the pass that started it).  A member that confirmed view v has
        therefore written its last byte of every AOR v took from it; the new owner,
        writing only after every confirmation, never overlaps it.  Until then the
        new owner holds the REGISTERs of the AORs it gained, and reads storage again
        when the fence comes down (what it cached meanwhile may predate the old
        owner's last write).  A peer is asked again every FENCE_RESEND; one that
        cannot be asked (its link down or silent) or does not answer within
        FENCE_TIMEOUT is passed over: its lease ends, or it is frozen and drops its
        work when it wakes, before writing.
        """
        now = time.monotonic()
        # (a fence still up when the next change comes passes what it holds on)
        held = self._fence.held if self._fence is not None else {}
        fence = _Fence(revision, set(), now + FENCE_TIMEOUT, now + FENCE_RESEND, held=held)
        self._fence = fence
        for peer in self.view.live:
            if peer != self.me and self._ask(fence, peer):
                fence.waiting.add(peer)
        self._count("fences")
        if not fence.waiting:
            self._fence_down()

    def _ask(self, fence: _Fence, peer: str) -> bool:
        call = next(self._ids)
        if not self.links.send(peer, Request(call, "applied", {"view": fence.revision})):
            return False
        fence.calls[call] = peer
        return True

    def _fenced_out(self, data: bytes, source: Source, p: Peek) -> bool:
        """Hold a REGISTER of an AOR the fence keeps from this member; True when held.

        Only the newest of each Call-ID is kept: an older CSeq, or a retransmission
        of one, answered when the fence comes down would reach a phone that has
        moved on (its next REGISTER, with credentials, after a 401).
        """
        fence, previous = self._fence, self.route.previous
        if fence is None or p.method != b"REGISTER" or previous is None:
            return False
        key = register_key(data)
        if key is None or previous.owner(key) in (None, self.me):
            return False
        seq = p.cseq_seq or 0
        call_id = p.call_id or b""
        kept = fence.held.get(call_id)
        if (kept is None and len(fence.held) < FENCE_PARKED) or (kept and kept[0] < seq):
            fence.held[call_id] = (seq, data, source)
        self._count("fence_held")
        return True

    def _fence_tick(self, now: float) -> None:
        """Pass over the peers that cannot be asked (link down or silent), ask the others
        again, or give up waiting (FENCE_TIMEOUT)."""
        fence = self._fence
        assert fence is not None
        for peer in list(fence.waiting):
            if not self.links.is_up(peer) or self.links.silent(peer):
                fence.waiting.discard(peer)
        if fence.waiting and now >= fence.deadline:
            self._count("fence_timeouts")
            logger.warning(
                "view %d: no confirmation from %s in %.1f s: writing the AORs it gave us",
                fence.revision,
                sorted(fence.waiting),
                FENCE_TIMEOUT,
            )
            fence.waiting.clear()
        if not fence.waiting:
            self._fence_down()
        elif now >= fence.resend_at:
            fence.resend_at = now + FENCE_RESEND
            for peer in fence.waiting:
                self._ask(fence, peer)

    def _confirmed(self, peer: str, call: int) -> None:
        fence = self._fence
        if fence is None or fence.calls.pop(call, None) != peer:
            return
        fence.waiting.discard(peer)
        if not fence.waiting:
            self._fence_down()

    def _fence_down(self) -> None:
        fence, self._fence = self._fence, None
        self.location.stored.invalidate()  # what was read meanwhile may be stale
        if fence is None:
            return
        now = time.time()
        for _, data, source in fence.held.values():
            self._serve_here(data, source, now, None)

    def _confirm(self) -> None:
        """Answer the ``applied`` calls whose view this member has now applied."""
        owed, self._owed = self._owed, []
        for peer, call, revision in owed:
            if self.view.revision >= revision:
                self.links.send(peer, Response(call, result=self.view.revision))
            else:
                self._owed.append((peer, call, revision))

    def _lost(self) -> None:
        """etcd lost, or this member was dead for the farm: its view and its flows are stale.

        Its lease is gone or going, so the others count it dead and take its work
        over (the retransmissions reach them): its own transactions are dropped, or
        their retransmissions, once its link is back, would ring callees twice.
        """
        self._epoch += 1
        self.location.stored.invalidate()
        self.flows.clear()
        self._unlinked.clear()
        for peer in list(self.view.members):  # what they queued for us meanwhile is stale
            if peer != self.me:
                self.links.forget(peer)
        dropped = self.core.layer.clear()
        self.core.dialogs.clear()
        if dropped:
            logger.warning("dead for the farm: %d transactions left to the others", dropped)
        self._serve()

    def owns(self, aor: str) -> bool:
        """Whether this member keeps ``aor``'s bindings (its ring owner, or no ring)."""
        owner = self.route.ring.owner(aor.lower())
        return owner is None or owner == self.me

    # -- packets from the sockets ---------------------------------------------------------

    def receive(self, data: bytes, source: Source, now: float) -> list[Send] | Drop:
        """A packet from a socket of this member (the sockets' MessageHandler)."""
        self.received += 1
        if self._stale():
            return []
        self.flows.mine(source)
        try:
            p = peek(data)
        except SipError:
            return self._serve_here(data, source, now, None)
        owner = None
        key: bytes | None = None
        if p.method == b"OPTIONS" and self.core.options_to_me(data):
            return self._serve_here(data, source, now, p)  # the balancer's probe: here
        if self.route.live:
            if p.method == b"REGISTER":
                key = register_key(data)
                owner = place(p, self.route, now, key=key, handoff=key is None)
            else:
                owner = place(p, self.route, now)
                if owner is None and p.method == b"ACK" and self._reinvites:
                    owner = self._reinvite_owner(p.branch, now)
                    if owner is not None:
                        self._count("reinvite_acks_relayed")
        elif not self.view.revision and source.transport == "UDP":
            # Starting: the socket is open before etcd gave us a view, and the
            # balancer already brings this address's flows (a restart).  Nothing can
            # be placed yet, and a 503 would end a call that this member or another
            # puts through on the retransmission, some milliseconds later.
            self._count("starting_dropped")
            return []
        # New work reaching a stopping member (a flow the balancer still maps here).
        new_work = (
            self.stopping
            and p.status is None
            and p.to_tag is None
            and p.method not in (b"ACK", b"CANCEL")
        )
        if new_work and owner is None:
            if self._has_transaction(data):
                new_work = False  # a retransmission of what this member is serving
            else:
                owner = self._successor(key or p.call_id or b"")
                new_work = owner is not None  # the last member: its 503 says so
        if (
            owner is not None
            and p.to_tag is None
            and p.method in GATED
            and not self.stopping
            and _CREDENTIALS.search(data) is None
        ):
            # A new request without credentials: its challenge (or 403/404) is the
            # same from every member and needs no state, so it is answered here.
            answer = self.core.gate(data, source, now)
            if answer is not None:
                self._count("answered_where_landed")
                self.dispatch(answer)
                return []
        if owner is not None:
            relay = Relay(data, source.transport, source.host, source.port, self.me)
            # What any member may serve (a response; an in-dialog request on its route
            # set, the ACK of a 2xx among them: loose routing needs no state) does not
            # wait for a silent owner.  The ACK of a non-2xx (no Route) does: only its
            # transaction absorbs it.
            stateless = p.status is not None or (p.to_tag is not None and p.route is not None)
            if not (stateless and self.links.silent(owner)) and self.links.send(owner, relay):
                self._count("relayed_out")
                if p.method == b"INVITE" and p.to_tag is not None:
                    self._relayed_reinvite(p.branch, owner, now)
                return []
            if self._hold(
                owner,
                relay,
                lambda: self._sent(self._unrelayed(owner, relay, key, p, stateless, new_work)),
            ):
                return []
            return self._unrelayed(owner, relay, key, p, stateless, new_work)
        if new_work and source.transport == "UDP":
            self._count("stopping_dropped")
            return []
        return self._serve_here(data, source, now, p)

    def _unrelayed(
        self,
        owner: str,
        relay: Relay,
        key: bytes | None,
        p: Peek,
        stateless: bool,
        new_work: bool,
    ) -> list[Send] | Drop:
        """The way of a packet its owner cannot take: see receive()."""
        data = relay.data
        source = Source(relay.transport, relay.host, relay.port)
        if key is not None and self.links.is_up(owner) and source.transport == "UDP":
            # The owner lives but its link is full: a REGISTER served elsewhere
            # would write the account beside its owner, whose copy in memory would
            # then overwrite it (a lost binding).  The phone retransmits.
            self._count("register_dropped_owner_busy")
            return []
        # The owner is out of reach (it may have just died, before the view says
        # so): the next member in the ring's order for the packet's key, the one
        # the view will name once the owner is gone, so that the retransmissions
        # and the rest of the transaction meet it there whoever receives them.
        self._count("relay_refused")
        for standby in self.route.ring.owners(key or p.call_id or b"", len(self.route.ring)):
            if standby == owner or (stateless and self.links.silent(standby)):
                continue
            if standby == self.me:
                break
            if self.links.send(standby, relay):
                self._count("relayed_out")
                if p.method == b"INVITE" and p.to_tag is not None:
                    self._relayed_reinvite(p.branch, standby, time.time())
                return []
        if new_work and source.transport == "UDP":
            self._count("stopping_dropped")
            return []
        return self._serve_here(data, source, time.time(), p)

    def _relayed_reinvite(self, branch: bytes | None, owner: str, now: float) -> None:
        if branch and len(self._reinvites) < REINVITES_MAX:
            self._reinvites[branch] = (owner, now + HANDOFF)

    def _reinvite_owner(self, branch: bytes | None, now: float) -> str | None:
        """The live member this member relayed the re-INVITE of ``branch`` to, if any."""
        entry = self._reinvites.get(branch) if branch else None
        if entry is None or entry[1] <= now or entry[0] not in self.route.live:
            return None
        return entry[0]

    def _forget_reinvites(self, now: float) -> None:
        reinvites = self._reinvites
        while reinvites:
            branch = next(iter(reinvites))
            if reinvites[branch][1] > now:
                break
            del reinvites[branch]

    def _hold(self, peer: str, frame: Frame, otherwise: Callable[[], None]) -> bool:
        """Hold ``frame`` while this new member's first link to live ``peer`` comes up
        (:mod:`sipfarm.unlinked`); True when held."""
        if self.links.was_up(peer) or peer not in self.view.live:
            return False
        if not self._unlinked.hold(peer, frame, otherwise, time.monotonic()):
            return False
        self._count("held_for_link")
        return True

    def _release(self, now: float) -> None:
        """Send what waited for links now up; what waited too long goes its other way."""
        for peer, up, frame, otherwise in self._unlinked.due(now, self.links.is_up):
            if up and self.links.send(peer, frame):
                self._count("relayed_out" if type(frame) is Relay else "emitted")
            else:
                otherwise()

    def _sent(self, sends: list[Send] | Drop) -> None:
        if type(sends) is list and sends:
            self.dispatch(sends)

    def _has_transaction(self, data: bytes) -> bool:
        try:
            request = parse(data)
        except SipError:
            return False
        return isinstance(request, SipRequest) and self.core.layer.match_server(request) is not None

    def _successor(self, key: bytes) -> str | None:
        """The member that takes ``key``'s new work once this one has gone."""
        for token in self.route.ring.owners(key, len(self.route.ring)):
            if token != self.me:
                return token
        return None

    def refuse(self, data: bytes, error: SipError, source: Source) -> list[Send] | Drop:
        outcome: list[Send] | Drop = self.core.refuse(data, error, source)
        return outcome

    def _serve_here(
        self, data: bytes, source: Source, now: float, p: Peek | None
    ) -> list[Send] | Drop:
        if p is not None and (
            self._fenced_out(data, source, p) or self._needs_lookup(p, data, source)
        ):
            return []
        acting = None
        if p is not None and p.status is None and p.to_tag is None and p.method in ACTED:
            acting = self._acting(p, now)
            if acting is not None:
                self._count("served_for_another")
        outcome: list[Send] | Drop = self.core.receive(data, source, now, acting=acting)
        if type(outcome) is list and outcome:
            self.dispatch(outcome)
            return []
        return outcome

    def _acting(self, p: Peek, now: float) -> str | None:
        """The member this one serves a new request for, if another: its owner, when out
        of reach (dead before the view says so, frozen, cut off), or, for a few seconds
        after a view change, its owner before the change, which died (one that left
        the farm drained took no new work: what it had, it finished).

        That member may have forwarded the request before it went, and the caller
        retransmits it here.  The proxy then sends it as that member did, under its
        token with a branch made from the caller's (:meth:`Proxy.process`), so that
        the callee sees the same request again, not a second INVITE of one call.  Its
        answers name the member that is gone, and the router brings them to the
        Call-ID's owner: this one.
        """
        route = self.route
        owner = place(p, route, now)
        if owner is not None:
            reachable = self.links.is_up(owner) and not self.links.silent(owner)
            return None if reachable else owner
        previous = route.previous
        if previous is None or now >= route.handoff_until - HANDOFF + INVITE_HANDOFF:
            return None
        before = previous.owner(p.call_id or b"")
        if before is None or before == self.me or before not in self._died:
            return None
        return before

    def dispatch(self, sends: list[Send]) -> None:
        """Send ``sends`` once the bindings written so far are durable, in order.

        While a group commit is pending (:mod:`mail.commit`), what the core says
        waits behind it: the 200 OK of a REGISTER whose binding is not yet on
        stable storage, and whatever comes after it, so that answers keep their
        order.  Nothing waits when nothing was written.

        What waited across a freeze past the lease (SIGSTOP: the commit's thread
        stops too, and finishes on waking) or a loss of etcd is dropped: the farm
        took this member's work over meanwhile, and a 100 Trying or a forwarded
        INVITE sent seconds late reaches a caller that has its call from another
        member, and rings the callee twice (the SIGSTOP farm test saw both).
        """
        commit = self.commit
        if commit.pending:
            commit.after(functools.partial(self._released, self._epoch, sends))
        else:
            self._route(sends)

    def _released(self, epoch: int, sends: list[Send]) -> None:
        self._awake()  # the commit may finish before anything else notices a freeze
        if epoch != self._epoch:
            self.counters["stale_sends_dropped"] = self.counters.get(
                "stale_sends_dropped", 0
            ) + len(sends)
            return
        self._route(sends)

    def _route(self, sends: list[Send]) -> None:
        """Send through the member that holds each destination's flow (module docstring).

        A flow whose holder is unknown, gone or out of reach (its link is down or
        silent: it may have just died, or be frozen or cut off) is claimed by the
        first member, in the ring's order for that address, that this member can
        reach: the same member whoever sends.
        Behind a DNAT balancer with SNAT of the members' own flows, two members
        sending to one phone from the VIP would clash in the balancer's conntrack,
        and the second one's packets would be dropped.
        """
        direct = []
        me = self.me
        live = self.route.live
        flows = self.flows
        same = self._same_socket
        for send in sends:
            transport = send.transport
            host, port = send.address
            key = (transport, host, port)
            holder = flows.holder(key)
            if holder == me or (holder in same and transport == "UDP"):
                direct.append(send)
                continue
            if holder is not None and holder in live and not self.links.silent(holder):
                emit = Emit(send.data, transport, host, port)
                if self.links.send(holder, emit):
                    self._count("emitted")
                    continue
                if self._hold(holder, emit, functools.partial(self._claimed, send, key, holder)):
                    continue
            if self._claim(send, key, holder):
                direct.append(send)
        if direct:
            self._send(direct)

    def _claimed(self, send: Send, key: tuple[str, str, int], unreachable: str) -> None:
        if self._claim(send, key, unreachable):
            self._send([send])

    def _claim(self, send: Send, key: tuple[str, str, int], unreachable: str | None) -> bool:
        """Find the flow a holder for this send (see dispatch); True when it is this member.

        Not written down: the holder may come back (a restart on the same address
        keeps the balancer's flows), and the phone's next packet says who holds it.
        """
        transport, host, port = key
        ring = self.route.ring
        for candidate in ring.owners(f"{transport}:{host}:{port}", len(ring)):
            if candidate == unreachable or self.links.silent(candidate):
                continue
            if candidate == self.me or (candidate in self._same_socket and transport == "UDP"):
                break
            if self.links.send(candidate, Emit(send.data, transport, host, port)):
                self._count("emitted")
                return False
        return True

    # -- the callee's bindings, from their owner ------------------------------------------

    def _needs_lookup(self, p: Peek, data: bytes, source: Source) -> bool:
        """Park a new request whose callee's AOR another member owns, and ask that member."""
        if (
            p.method is None
            or p.method in NO_LOOKUP
            or p.to_tag is not None
            or p.route is not None
            or p.request_uri is None
        ):
            return False
        try:
            uri = parse_uri(p.request_uri.decode("utf-8"))
        except (SipError, UnicodeDecodeError):
            return False
        if type(uri) is not SipUri or not uri.user or not self.core.directory.has_domain(uri.host):
            return False
        try:
            aor = callee_aor(self.core.directory, uri)
        except AccountUnreadable:
            return False  # the core answers 500
        if aor is None:
            return False  # no such account: the core answers 404
        owner = self.route.ring.owner(aor.lower())
        if owner is None or owner == self.me or aor in self.location.answers:
            return False
        parked = self._parked.get(aor)
        if parked is not None:
            if len(parked) < 64:
                parked.append((data, source))
            return True
        call = next(self._ids)
        if not self.links.send(owner, Request(call, "lookup", {"aor": aor})):
            return False  # the owner is out of reach: the core reads storage
        self._count("lookups_sent")
        self._calls[call] = (aor, time.monotonic() + LOOKUP_TIMEOUT)
        self._parked[aor] = [(data, source)]
        return True

    def _answered(self, aor: str, bindings: list[Binding] | None) -> None:
        if bindings is None:  # no answer: storage is the truth
            bindings = self.location.read(aor)
        self.location.answers[aor] = (time.time(), bindings)
        for data, source in self._parked.pop(aor, ()):
            self._serve_here(data, source, time.time(), None)

    def _awake(self) -> float:
        """Notice a freeze (see tick), from the timer or from the first packet after it.

        After a freeze the event loop may run the packets that waited (in the UDP
        socket, on the cluster links) before its timer: they are stale, dropped for
        a moment (STALE) while the burst is read, and the socket is emptied.  The
        transactions are dropped too, before their timers fire: the farm took them
        over, and a retransmission from here would be a duplicate.
        """
        now = time.monotonic()
        if self._last_tick and now - self._last_tick > self.membership.ttl:
            self._epoch += 1
            stale = self._drain()
            self._stale_until = now + STALE
            dropped = self.core.layer.clear()  # before their timers fire: others took over
            self.core.dialogs.clear()
            logger.warning(
                "frozen for %.1f s, longer than the lease: %d stale datagrams discarded, "
                "%d transactions dropped",
                now - self._last_tick,
                stale,
                dropped,
            )
            self.membership.suspect()
        self._last_tick = now
        return now

    def _stale(self) -> bool:
        if self._awake() < self._stale_until:
            self._count("stale_discarded")
            return True
        return False

    def tick(self) -> None:
        """Run from the member's timer: a freeze noticed; late lookups served from storage.

        A member that was stopped (SIGSTOP, a VM pause) for longer than its lease
        is dead for the others and its view and cached bindings are stale: it
        takes no new work and forgets what it cached until etcd takes it back.
        The timer runs before the packets that waited in the sockets.
        """
        now = self._awake()
        if self._fence is not None:
            self._fence_tick(now)
        if self._unlinked:
            self._release(now)
        if self._reinvites:
            self._forget_reinvites(time.time())
        if self._joining_since is not None and not self._publishing:
            me = self.view.members.get(self.me)
            if me is None or me.state is not MemberState.JOINING:
                self._joining_since = None
            else:
                self._publish()
        if not self._calls:
            return
        late = [(call, aor) for call, (aor, deadline) in self._calls.items() if deadline <= now]
        for call, aor in late:
            del self._calls[call]
            self._count("lookups_timed_out")
            self._answered(aor, None)

    # -- frames from other members ------------------------------------------------------

    def frame_received(self, peer: str, frame: Frame) -> None:
        if type(frame) is Response:  # an answer to what we asked: never stale
            self._awake()
        elif self._stale():
            return
        if type(frame) is Relay:
            source = Source(frame.transport, frame.host, frame.port)
            if frame.received_by != self.me:
                self.flows.held_by(source, frame.received_by)
            self._count("relayed_in")
            now = time.time()
            try:
                p = peek(frame.data)
            except SipError:
                p = None
            try:
                self._serve_here(frame.data, source, now, p)  # never relayed on
            except Exception:  # a bug: logged, and the request gets 500 (STYLE §4)
                logger.exception("relayed packet from %s failed: %r", peer, frame.data[:200])
                refused = self.refuse(frame.data, ServerInternalError(), source)
                if type(refused) is list and refused:
                    self.dispatch(refused)
        elif type(frame) is Emit:
            self.flows.mine((frame.transport, frame.host, frame.port))
            self._send([Send(frame.data, frame.transport, (frame.host, frame.port))])
        elif type(frame) is Request:
            self._call(peer, frame)
        elif type(frame) is Response:
            waiting = self._waiting.pop(frame.id, None)
            if waiting is not None:
                if not waiting[1].done():
                    if frame.error is not None:
                        waiting[1].set_exception(CallFailed(frame.error))
                    else:
                        waiting[1].set_result(frame.result)
                return
            if self._fence is not None and frame.id in self._fence.calls:
                self._confirmed(peer, frame.id)
                return
            call = self._calls.pop(frame.id, None)
            if call is None:
                return  # answered too late: storage already served it
            bindings: list[Binding] | None = None
            if frame.error is None and isinstance(frame.result, list):
                try:
                    bindings = []
                    for record in frame.result:
                        b, holder = binding_from_record(record)
                        bindings.append(b)
                        if holder is not None and self.flows.holder(b.source) is None:
                            self.flows.held_by(b.source, holder)
                except ValueError as exc:
                    logger.warning("lookup answer from %s unreadable: %s", peer, exc)
                    bindings = None
            self._answered(call[0], bindings)

    def _call(self, peer: str, request: Request) -> None:
        if request.method == "applied" and type(request.args.get("view")) is int:
            self._owed.append((peer, request.id, request.args["view"]))
            self._confirm()  # now, or once this member applies that view
            return
        if request.method == "provision":
            self._provide(peer, request)
            return
        if request.method == "changed":  # no answer: a cache entry to drop
            domain, user = request.args.get("domain"), request.args.get("user")
            if (
                isinstance(domain, str)
                and (user is None or isinstance(user, str))
                and self.on_changed is not None
            ):
                self.on_changed(domain, user)
            return
        if request.method != "lookup" or not isinstance(request.args.get("aor"), str):
            self.links.send(peer, Response(request.id, error=f"unknown call {request.method}"))
            return
        aor = request.args["aor"]
        now = time.time()
        stored = self.location.stored
        found = stored.lookup(aor, now) if self.owns(aor) else self.location.read(aor)
        result = [binding_record(b, self.flows.holder(b.source)) for b in found]
        self._count("lookups_answered")
        self.links.send(peer, Response(request.id, result=result))

    # -- calls that wait for their answer (provisioning) -----------------------------------

    def writer(self, domain: str, user: str | None) -> str | None:
        """The member that writes an account (its ring owner: the owner of its bindings)
        or a domain (the controller: a foldering switch must run once); None when that
        is this member, or when there is no farm to ask."""
        if user is not None:
            token = self.route.ring.owner(f"sip:{user}@{domain}".lower())
        else:
            token = self.view.controller
        return None if token is None or token == self.me else token

    def fenced(self) -> bool:
        """Whether this member still waits for the others to apply the view that gave it
        AORs (their previous owner may still write them)."""
        return self._fence is not None

    async def ask(self, peer: str, method: str, args: dict[str, Any], timeout: float | None) -> Any:
        """Call ``method`` on ``peer`` and wait for its result.

        Raises :class:`Unreachable` (its link is down or silent, or it leaves the
        view meanwhile), :class:`CallFailed` (it answered an error) or TimeoutError.
        """
        if self.links.silent(peer):
            raise Unreachable(f"{peer} is silent")
        call = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.links.send(peer, Request(call, method, args)):
            raise Unreachable(f"no link to {peer}")
        self._count(f"asked_{method}")
        self._waiting[call] = (peer, future)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(call, None)

    def changed(self, domain: str, user: str | None) -> None:
        """Tell the others that provisioning changed an account (or a whole domain)."""
        args = {"domain": domain, "user": user}
        for peer in self.view.members:
            if peer != self.me and not self.links.silent(peer):
                self.links.send(peer, Request(next(self._ids), "changed", args))

    def _provide(self, peer: str, request: Request) -> None:
        """A provisioning request another member received for a subject we write."""
        method, path, body = (request.args.get(k) for k in ("method", "path", "body"))
        if (
            self.on_provision is None
            or not isinstance(method, str)
            or not isinstance(path, str)
            or not isinstance(body, bytes)
        ):
            self.links.send(peer, Response(request.id, error="not a provisioning call"))
            return

        def done(task: asyncio.Task[tuple[int, Any]]) -> None:
            self._tasks.discard(task)
            if task.cancelled():
                return
            exc = task.exception()
            if exc is not None:
                logger.error("provisioning for %s failed: %r", peer, exc)
                self.links.send(peer, Response(request.id, error=f"failed: {exc!r}"))
            else:
                self.links.send(peer, Response(request.id, result=list(task.result())))

        self._count("provision_for_others")
        task = asyncio.get_running_loop().create_task(self.on_provision(method, path, body))
        self._tasks.add(task)
        task.add_done_callback(done)

    def status(self) -> dict[str, Any]:
        """The view as this member sees it (for /status)."""
        view = self.view
        return {
            "revision": view.revision,
            "lost": self.membership.lost,
            "controller": view.controller,
            "backup": view.backup,
            "ring": sorted(self.route.ring.members),
            # the kernel steering's slot of this member's socket (sipfarm up), or None
            "steering": self.steered.slot if self.steered is not None else None,
            "members": {
                t: {
                    "state": m.state.value,
                    "address": list(m.address),
                    "sip": list(m.sip) if m.sip else None,
                    "http": list(m.http) if m.http else None,
                    "roles": sorted(m.roles),
                    "link": t == self.me or (self.links.is_up(t) and not self.links.silent(t)),
                }
                for t, m in sorted(view.members.items())
            },
        }
