"""The stateful proxy (RFC 3261 §16): targets, forking, responses, CANCEL, timer C.

The proxy is the transaction user of a
:class:`~sipfarm.transaction.layer.TransactionLayer`: a request it forwards gets
a server transaction and one client transaction per branch; what they send
lands in the layer's ``out`` list.  Which targets a request has (§16.5) is
asked of a :class:`Locator` port (the registrar's location service and the
served domains); everything else is here and pure.

Decisions written down:

- INVITE gets 100 Trying at once (§16.2 allows it; it stops the caller's
  retransmissions while the callee rings, as Kamailio's tm does).
- Every contact of the target set is tried in parallel (§16.6 allows
  parallel or sequential forking; q-values only order the branches).
- Record-Route goes on dialog-creating requests outside a dialog (INVITE,
  SUBSCRIBE, REFER, NOTIFY); it names the member (``member=`` token,
  DESIGN.md "Ownership").  When the request leaves on another transport than
  it came in on, two values go in (one per side), as Kamailio's double RR.
- Loop detection (§16.3 step 4) hashes what identifies the request's route
  into our branch (§16.6 step 8): a Via of ours with the same hash is a
  loop (482); one with another hash is a spiral and is served.
- Targets are numeric (IP) hosts: this proxy does no DNS (RFC 3263).  A
  domain it does not serve is relayed to only when its host is numeric.
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ..actions import Send, Source
from ..ownership import branch_prefix, is_token
from ..sip.headers import Headers
from ..sip.message import Request, Response
from ..sip.response import make_response
from ..sip.uri import SipUri, Uri
from ..sip.via import is_ip
from ..transaction.events import TerminationReason
from ..transaction.layer import ClientEntry, ServerEntry, TransactionLayer
from .context import Branch, ResponseContext, best_response
from .routing import (
    Hop,
    Self,
    answer_address,
    cancel_for,
    forward,
    loop_hash,
    next_hop,
    strip_top_via,
)

__all__ = ["Locator", "Proxy", "ProxyConfig", "Reject", "Target"]

#: Requests that create a dialog, so that the proxy stays on its route (§16.6 step 4).
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


class Target(NamedTuple):
    """One place to send a request: the new Request-URI, the hop, a Path, a flow."""

    uri: Uri
    hop: Hop
    routes: tuple[str, ...] = ()  # Path values of the binding (RFC 3327 §5.4), top first
    flow: bool = False  # the hop is the connection the contact registered over (RFC 5626)


class Reject(NamedTuple):
    """The proxy answers the request itself (statelessly) with this; status 0 for an ACK
    that goes nowhere (an ACK is never answered, §17.1.1.3)."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


class Locator(Protocol):
    """The location service as the proxy sees it (§16.5)."""

    def is_local(self, uri: SipUri) -> bool:
        """Whether the URI's host is a domain this farm serves."""

    def locate(self, uri: SipUri, now: float) -> list[Target] | Reject:
        """The targets of an AOR of a served domain; 404 unknown, 480 nobody registered."""


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Timer C (§16.6 step 11: more than 3 minutes) and Record-Route on or off."""

    timer_c: float = 180.0
    record_route: bool = True


class Proxy:
    """RFC 3261 §16 over a transaction layer; the layer's TU."""

    def __init__(
        self,
        me: Self,
        layer: TransactionLayer,
        locator: Locator,
        config: ProxyConfig | None = None,
        *,
        rand: Callable[[int], str] = secrets.token_hex,
    ) -> None:
        self.me = me
        self.layer = layer
        self.locator = locator
        self.config = config if config is not None else ProxyConfig()
        self._rand = rand
        self._prefix = branch_prefix(me.token)
        layer.tu = self
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- requests (§16.3 - §16.6) --------------------------------------------------------

    def process(
        self,
        request: Request,
        source: Source,
        now: float,
        *,
        may_relay: bool,
        acting: str | None = None,
    ) -> Reject | None:
        """Route a new request and forward it; or say what to answer (statelessly).

        ``may_relay``: the sender is trusted or authenticated, so a target
        outside the served domains is allowed (else 403: no open relay).
        ``acting``: the token of the member this one serves the request for (its
        owner, out of reach): the request goes out as that member would send it.
        """
        # §16.3 step 4: loop detection
        if any(v.branch and v.branch.startswith(self._prefix) for v in request.via):
            h = loop_hash(request)
            n = len(self._prefix)
            for v in request.via:
                b = v.branch
                if b and b.startswith(self._prefix) and b[n : n + 8] == h:
                    return Reject(482)
        # §16.4: route information
        uri = request.uri
        strip_last = False
        me = self.me
        if isinstance(uri, SipUri) and uri.params.get("member") == me.token and request.route:
            uri = request.route[-1].uri  # a strict router before us put our RR in the R-URI
            strip_last = True
        routes = request.route
        pop = 0
        while pop < len(routes) - (1 if strip_last else 0) and me.is_me(routes[pop].uri):
            pop += 1
        in_dialog = request.to.tag is not None
        remaining = len(routes) - pop - (1 if strip_last else 0)
        # §16.5: targets
        if remaining:
            hop = next_hop(routes[pop].uri)
            if hop is None:
                return Reject(416, "Unsupported URI Scheme in Route")
            if not (pop or may_relay or in_dialog):
                return Reject(403, "Relaying Denied")
            targets: list[Target] = [Target(uri, hop)]
        elif in_dialog:
            if not isinstance(uri, SipUri) or self.locator.is_local(uri) or me.is_me(uri):
                return Reject(481 if request.method != "ACK" else 0)
            if not (pop or may_relay):
                return Reject(403, "Relaying Denied")
            hop = next_hop(uri)
            if hop is None:
                return Reject(416)
            targets = [Target(uri, hop)]
        elif not isinstance(uri, SipUri):
            return Reject(416)
        elif self.locator.is_local(uri):
            located = self.locator.locate(uri, now)
            if isinstance(located, Reject):
                return located
            targets = located
        else:
            if not may_relay:
                return Reject(403, "Relaying Denied")
            if me.is_me(uri):
                return Reject(404)
            hop = next_hop(uri)
            if hop is None or not is_ip(hop.host):
                return Reject(404, "Not Found (no DNS for domains not served here)")
            targets = [Target(uri, hop)]
        if request.method == "ACK":  # an ACK to a 2xx: forwarded without a transaction
            self._forward_ack(request, targets[0], pop, strip_last)
            return None
        self._fork(request, source, targets, pop, strip_last, in_dialog, now, acting)
        return None

    def _fork(
        self,
        request: Request,
        source: Source,
        targets: list[Target],
        pop: int,
        strip_last: bool,
        in_dialog: bool,
        now: float,
        acting: str | None = None,
    ) -> None:
        layer = self.layer
        transport = source.transport
        server = layer.create_server(request, transport, answer_address(request, source), None, now)
        ctx = ResponseContext(server, request)
        server.context = ctx
        if request.method == "INVITE":
            layer.respond(server, make_response(request, 100), now)
        h = loop_hash(request)
        rr_wanted = self.config.record_route and not in_dialog and request.method in DIALOG_CREATING
        # Every branch is made from the caller's (§16.11's way), under the token of the
        # member the request is the work of: this one, the owner it serves a request
        # for (``acting``), or for an in-dialog request the member that record-routed
        # the dialog.  A member that takes over a retransmission its owner may have
        # forwarded already (the owner died, or is cut off) then sends the very
        # request the owner sent, and the callee answers it as the retransmission it
        # is, rather than as a second INVITE of one call (a 482 at best, RFC 3261
        # §8.2.2.2; a UA that aborts the call at worst).
        theirs = request.via[0].branch or request.call_id
        prefix = self._prefix if acting is None else branch_prefix(acting)
        if in_dialog:
            first = request.route[0].uri if pop else None
            owner = first.params.get("member") if isinstance(first, SipUri) else None
            if owner and is_token(owner):
                prefix = branch_prefix(owner.lower())
        for i, target in enumerate(targets):
            rr: tuple[str, ...] = ()
            if rr_wanted:
                out_rr = self.me.record_route(target.hop.transport, acting)
                if target.hop.transport != transport:
                    rr = (out_rr, self.me.record_route(transport, acting))
                else:
                    rr = (out_rr,)
            mark = zlib.crc32(f"{theirs}/{i}".encode("utf-8", "surrogateescape"))
            branch = f"{prefix}{h}{mark:08x}"
            out = forward(
                request,
                uri=target.uri,
                via=self.me.via(target.hop.transport, branch),
                pop_routes=pop,
                routes=target.routes,
                record_route=rr,
                strip_last_route=strip_last,
            )
            b = Branch(ctx, out, target.flow)
            ctx.branches.append(b)
            hop = target.hop
            b.client = layer.create_client(out, hop.transport, (hop.host, hop.port), b, now)
        if request.method == "INVITE":
            self._start_timer_c(ctx, now)

    def _forward_ack(self, ack: Request, target: Target, pop: int, strip_last: bool) -> None:
        """§16.11 for the ACK of a 2xx: a branch made from the ACK's own, no transaction."""
        theirs = ack.via[0].branch or ack.call_id
        mark = zlib.crc32(theirs.encode("utf-8", "surrogateescape"))  # the same on every member
        branch = f"{self._prefix}{loop_hash(ack)}{mark:08x}"
        out = forward(
            ack,
            uri=target.uri,
            via=self.me.via(target.hop.transport, branch),
            pop_routes=pop,
            routes=target.routes,
            strip_last_route=strip_last,
        )
        hop = target.hop
        self.layer.out.append(Send(bytes(out), hop.transport, (hop.host, hop.port)))
        self._count("ack_forwarded")

    # -- CANCEL (§16.10) ----------------------------------------------------------------

    def cancel(self, invite: ServerEntry, cancel: Request, source: Source, now: float) -> None:
        """A CANCEL matched the INVITE server transaction ``invite``: answer it, cancel branches."""
        layer = self.layer
        entry = layer.create_server(
            cancel, source.transport, answer_address(cancel, source), None, now
        )
        layer.respond(entry, make_response(cancel, 200), now)
        ctx = invite.context
        if isinstance(ctx, ResponseContext) and not ctx.done:
            for b in ctx.pending():
                self._cancel_branch(b, now)

    def _cancel_branch(self, b: Branch, now: float) -> None:
        """§9.1: CANCEL a pending INVITE branch once it has had a provisional response."""
        if b.cancel_sent or b.final is not None or b.request.method != "INVITE":
            return
        if not b.provisional:
            b.cancel_wanted = True  # sent when the first provisional arrives
            return
        b.cancel_sent = True
        client = b.client
        assert client is not None
        layer = self.layer
        layer.create_client(cancel_for(b.request), client.transport, client.address, None, now)
        # §9.1: no final response 64*T1 after the CANCEL: the branch is given up
        layer.schedule(now + layer.config.timeout, self._cancel_timeout, b)

    def _cancel_timeout(self, b: Branch, seq: int, now: float) -> None:
        if b.final is not None:
            return
        self._count("cancel_unanswered")
        b.final = 408
        if b.client is not None:
            self.layer.abandon(b.client)
            b.client = None
        self._check_done(b.context, now)

    # -- timers -----------------------------------------------------------------------

    def _start_timer_c(self, ctx: ResponseContext, now: float) -> None:
        self._stop_timer_c(ctx)
        box: list[ResponseContext | None] = [ctx]
        ctx.timer_c = box
        self.layer.schedule(now + self.config.timer_c, self._timer_c, box)

    def _stop_timer_c(self, ctx: ResponseContext) -> None:
        if ctx.timer_c is not None:
            ctx.timer_c[0] = None
            ctx.timer_c = None

    def _timer_c(self, box: list[ResponseContext | None], seq: int, now: float) -> None:
        """§16.8: the INVITE got no final answer in time: CANCEL or give up each branch."""
        ctx = box[0]
        if ctx is None or ctx.done:
            return
        ctx.timer_c = None
        self._count("timer_c")
        for b in ctx.pending():
            if b.provisional:
                self._cancel_branch(b, now)
            else:
                b.final = 408
        self._check_done(ctx, now)

    # -- the transaction layer's TU ---------------------------------------------------

    def on_request(self, entry: ServerEntry, request: Request, now: float) -> None:
        """Server transactions pass their request up on start; nothing to do then.

        An ACK to a 2xx matched by branch (a UA reusing the INVITE's branch) is
        passed up too: it goes on like any ACK of a dialog, without a transaction.
        """

    def on_response(self, entry: ClientEntry, response: Response, now: float) -> None:
        b = entry.context
        if not isinstance(b, Branch):
            return  # the answer to a CANCEL we sent: nothing goes upstream (§16.10)
        ctx = b.context
        status = response.status
        layer = self.layer
        if status < 200:
            if status == 100:
                return  # §16.7 step 3: 100 is not forwarded
            b.provisional = True
            if b.cancel_wanted:
                self._cancel_branch(b, now)
                return
            if ctx.timer_c is not None and not ctx.done:  # §16.7 step 2: restart timer C
                self._start_timer_c(ctx, now)
            if not ctx.done:
                layer.respond(ctx.server, strip_top_via(response), now)
            return
        if status < 300:
            if b.final is None:
                b.final = response
            layer.respond(ctx.server, strip_top_via(response), now)  # every 2xx goes up
            if not ctx.done:
                self._finish(ctx)
                for other in ctx.pending():
                    self._cancel_branch(other, now)
            return
        if b.final is None:
            b.final = response
        if ctx.done:
            return
        if status >= 600:
            for other in ctx.pending():
                self._cancel_branch(other, now)
        self._check_done(ctx, now)

    def on_terminated(
        self, entry: ServerEntry | ClientEntry, reason: TerminationReason, now: float
    ) -> None:
        b = entry.context
        if isinstance(b, Branch):
            b.client = None  # break the branch <-> client entry cycle (see below)
        if isinstance(b, ResponseContext):
            # The server side is over: break the context's cycles (context <-> server
            # entry, context <-> branches) so that reference counting frees it all,
            # not the cyclic collector (whose full passes would pause the loop).
            entry.context = None
            if not b.done:  # the caller is gone (its transport failed): stop ringing
                b.done = True
                for pending in b.pending():
                    self._cancel_branch(pending, now)
            b.branches = []
            return
        if not isinstance(b, Branch) or b.final is not None:
            return
        if reason is TerminationReason.TIMEOUT:
            b.final = 408
        elif reason is TerminationReason.TRANSPORT_ERROR:
            b.final = 430 if b.flow else 503
        else:
            return
        self._check_done(b.context, now)

    def _finish(self, ctx: ResponseContext) -> None:
        ctx.done = True
        self._stop_timer_c(ctx)

    def _check_done(self, ctx: ResponseContext, now: float) -> None:
        """Once every branch has its final response, send the best upstream (§16.7 step 6)."""
        if ctx.done or any(b.final is None for b in ctx.branches):
            return
        self._finish(ctx)
        best = best_response(ctx.branches)
        if isinstance(best, int):
            status = best
            if status == 430 and not _supports_outbound(ctx.request):
                status = 480  # RFC 5626 §5.3: 430 only to those who know it
            response = make_response(ctx.request, status, to_tag=self._tag(ctx.request))
        else:
            response = strip_top_via(best)
            if response.status == 503:  # §16.7 step 6
                response = make_response(ctx.request, 500, to_tag=self._tag(ctx.request))
            elif response.status in (401, 407):
                response = _with_all_challenges(response, best, ctx.branches)
        self.layer.respond(ctx.server, response, now)

    def _tag(self, request: Request) -> str:
        return f"{self.me.token}-{self._rand(4)}"


#: The challenge headers a 401 / 407 carries (§16.7 step 7).
_CHALLENGES = ("www-authenticate", "proxy-authenticate")


def _with_all_challenges(response: Response, best: Response, branches: list[Branch]) -> Response:
    """§16.7 step 7: the 401/407 sent upstream carries the challenges of every branch."""
    extra = [
        f
        for b in branches
        if isinstance(b.final, Response) and b.final is not best and b.final.status in (401, 407)
        for k in _CHALLENGES
        for f in b.final.headers.fields_key(k)
    ]
    if not extra:
        return response
    fields = list(response.headers)
    at = next((i for i, f in enumerate(fields) if f.name.lower() == "content-length"), len(fields))
    return response.replace(headers=Headers(fields[:at] + extra + fields[at:]))


def _supports_outbound(request: Request) -> bool:
    return "outbound" in request.headers.tokens("supported")
