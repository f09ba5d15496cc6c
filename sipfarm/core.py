"""A member's SIP core: what a request meets, in order, and who serves it (sans-IO).

Bytes and their source in, :class:`~sipfarm.actions.Send` values out (STYLE.md
§1); ``now`` is wall-clock seconds, because nonces and binding expiries are
shared with other members of the farm through messages and storage.

The order every message meets (Kamailio's default routing script does the same
steps in the same order):

1. Bytes that do not parse: answered when enough of them survives, else
   dropped and counted (:class:`~sipfarm.stateless.StatelessCore`).
2. A response goes to its client transaction; a 2xx of ours whose transaction
   has ended is forwarded statelessly (§16.7 step 5, §16.11); others are dropped.
3. A request matching a server transaction (a retransmission, the ACK of a
   non-2xx) goes to it.  A CANCEL goes to the INVITE it cancels (§9.2, §16.10).
4. The checks of every request: 416, 420, 483 (``validate_request``).
5. REGISTER: domain (403), account (404), digest (401 / 403), then the registrar.
   OPTIONS to the member itself: 200 with its capabilities (§11).
6. While the edge says the member is overloaded, a new out-of-dialog request gets
   503 + Retry-After (RFC 3261 §21.5.4), so that calls under way still complete.
7. Anything else is proxied (§16): a call from a local user is challenged
   (407) unless its source is trusted; a target outside the served domains
   needs a trusted or authenticated sender (403, no open relay).

Early answers (401, 403, 404, 407, 480 …) are stateless, with the To-tag a
function of the request, so a retransmission gets the same answer (§8.2.7).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from mail.api import AccountRecord
from mail.errors import AccountUnreadable

from .actions import Drop, Send, SendResponse, Source
from .auth import DigestAuth, TrustedSources, Verdict
from .ownership import branch_prefix, is_stateless_tag
from .proxy.proxy import Proxy, ProxyConfig, Reject, Target
from .proxy.routing import (
    Hop,
    Self,
    answer_address,
    is_farm_branch,
    next_hop,
    strip_top_via,
)
from .registrar import Location, Registrar, RegistrarConfig, aor_of
from .sip import Request, Response, SipError, parse, validate_request
from .sip.nameaddr import parse_nameaddr
from .sip.uri import SipUri, parse_uri
from .sip.via import response_address
from .stateless import StatelessConfig, StatelessCore
from .transaction.key import cancel_target_key
from .transaction.layer import ClientEntry, ServerEntry, TransactionLayer
from .transaction.timers import TimerConfig

try:  # the C answer of the common OPTIONS (sipfarm.sip._speedups)
    from .sip._speedups import answer_options as _answer_options  # type: ignore[import-not-found]
except ImportError:  # built without a C compiler
    _answer_options = None

__all__ = ["CoreConfig", "Directory", "Outcome", "SipCore"]

Outcome = list[Send] | Drop

#: Methods a member serves itself or proxies; what Allow says (§20.5).
ALLOW = (
    "INVITE",
    "ACK",
    "CANCEL",
    "BYE",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "UPDATE",
    "INFO",
    "MESSAGE",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "PUBLISH",
)

#: Seconds after which a dialog with no BYE seen is no longer counted (a lost BYE,
#: a phone that vanished): what a drain waits for at most on its account.
DIALOG_LIFETIME = 7200.0

#: How long an INVITE whose 2xx went through statelessly is taken as answered (64*T1).
ANSWERED_FOR = 32.0

#: Retry-After (seconds) of the 503 a member answers new requests with while overloaded.
RETRY_AFTER = "5"

#: Retry-After of the 500 answered when an account's settings cannot be read.
UNREADABLE_RETRY_AFTER = (("Retry-After", "5"),)

#: Out-of-dialog requests from local users that are challenged (407) when proxied.
CHALLENGED = frozenset({"INVITE", "MESSAGE", "SUBSCRIBE", "REFER", "PUBLISH", "OPTIONS", "INFO"})


class Directory(Protocol):
    """The account store as the SIP core reads it (`mail.directory.Directory`)."""

    def has_domain(self, domain: str) -> bool: ...

    def account(self, user: str, domain: str) -> AccountRecord | None:
        """None when there is no such account; raises mail.errors.AccountUnreadable when
        its settings cannot be read (answered 500, not 404)."""

    def canonical(self, user: str, domain: str) -> str | None: ...


def callee_aor(directory: Directory, uri: SipUri) -> str | None:
    """The AOR whose bindings a request to ``uri`` (in a served domain) reaches: its own
    for an account, its account's for an alias (``mail.aliases``), None for neither."""
    user = uri.user
    if not user:
        return None
    domain = uri.host.lower()
    if directory.account(user, domain) is not None:
        return aor_of(uri)
    name = directory.canonical(user, domain)
    return None if name is None else f"sip:{name}@{domain}"


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Everything the SIP core is built from (validated by the CLI)."""

    token: str
    advertise: tuple[str, int]  # the address in our Via and Record-Route
    secret: bytes  # the farm-wide nonce secret
    addresses: tuple[str, ...] = ()  # more host:port strings that are us
    trusted: tuple[str, ...] = ()
    digest_algorithms: tuple[str, ...] = ("MD5", "SHA-256")
    registrar: RegistrarConfig = field(default_factory=RegistrarConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    timers: TimerConfig = field(default_factory=TimerConfig)


class _Locator:
    """§16.5 for served domains: the registrar's bindings as proxy targets."""

    def __init__(self, directory: Directory, location: Location) -> None:
        self.directory = directory
        self.location = location

    def is_local(self, uri: SipUri) -> bool:
        return self.directory.has_domain(uri.host)

    def locate(self, uri: SipUri, now: float) -> list[Target] | Reject:
        aor = callee_aor(self.directory, uri)
        if aor is None:
            return Reject(404)
        targets = []
        for b in self.location.lookup(aor, now):
            try:
                contact = parse_uri(b.contact)
            except SipError:
                continue
            src = b.source
            flow = src.transport != "UDP" or b.reg_id is not None
            hop: Hop | None
            if b.path:
                hop = next_hop(parse_nameaddr(b.path[0]).uri)
            elif flow:
                hop = Hop(src.transport, src.host, src.port)
            else:
                hop = next_hop(contact)
            if hop is not None:
                targets.append(Target(contact, hop, b.path, flow and not b.path))
        return targets or Reject(480)


class SipCore:
    """One member's SIP behaviour; the edges feed it and send what it returns."""

    def __init__(self, config: CoreConfig, directory: Directory, location: Location) -> None:
        self.config = config
        self.directory = directory
        self.location = location
        self.counters: Counter[str] = Counter()
        self.stateless = StatelessCore(
            StatelessConfig(token=config.token, allow=ALLOW, supported=("path", "outbound"))
        )
        self.me = Self(config.token, config.advertise, set(config.addresses))
        self.layer = TransactionLayer(config.timers)
        self.proxy = Proxy(self.me, self.layer, _Locator(directory, location), config.proxy)
        self.registrar = Registrar(location, config.registrar)
        self.auth = DigestAuth(config.secret, algorithms=config.digest_algorithms)
        self.trusted = TrustedSources(list(config.trusted))
        #: Cleared by the admin endpoint to drain the member: OPTIONS to it (the
        #: balancer's SIP health probe) get 503; everything else is served.
        self.ready = True
        #: Set by the edge while the member cannot keep up (sipfarm.node: a filling UDP
        #: receive queue, a late event loop): new out-of-dialog requests get 503 +
        #: Retry-After, the rest is served.
        self.overloaded = False
        #: Cleared by the farm edge while the member has no trustworthy view of the farm
        #: (etcd lost, or the farm declared it dead): new out-of-dialog requests get 503
        #: like under overload; transactions and dialogs under way are served.
        self.accepting = True
        #: Call-ID → when the dialog through this member was set up (see _dialog).
        self.dialogs: dict[str, float] = {}
        self._branch_prefix = branch_prefix(config.token)
        #: (Call-ID, CSeq) → until when: INVITEs whose 2xx this member forwarded statelessly.
        self.answered: dict[tuple[str, int], float] = {}
        self._own = {a.encode() for a in self.me.addresses}
        host, port = config.advertise
        if port == 5060:
            self._own.add(host.encode())

    # -- the edges' entry points ------------------------------------------------------

    def receive(
        self, data: bytes, source: Source, now: float, *, acting: str | None = None
    ) -> Outcome:
        """One whole message (a datagram, or what the stream framer cut out).

        ``acting``: the farm serves this request for its owner, which it cannot reach
        (:meth:`sipfarm.proxy.Proxy.process`).
        """
        if (
            _answer_options is not None
            and self.ready
            and data.startswith(b"OPTIONS sip:")
            and self.options_to_me(data)
        ):
            answer = _answer_options(
                data, source.host, source.port, self.config.token, self.stateless.options_extra
            )
            if answer is not None:
                self.stateless.counters["options"] += 1
                address = (answer[1], answer[2]) if source.transport == "UDP" else source[1:]
                return [Send(answer[0], source.transport, address)]
        try:
            msg = parse(data)
        except SipError as exc:
            return self.refuse(data, exc, source)
        out: list[Send] = []
        self.layer.out = out
        if isinstance(msg, Response):
            self._response(msg, source, now)
            return out
        request = msg.with_received(source.host, source.port)
        method = request.method
        try:
            if method == "ACK":
                self._ack(request, source, now)
            elif method == "CANCEL":
                self._cancel(request, source, now)
            else:
                # REGISTER is answered without a transaction (a retransmission is
                # answered again, RFC 3261 §10.3 and the registrar's CSeq rule)
                entry = None if method == "REGISTER" else self.layer.match_server(request)
                if entry is not None:
                    self.layer.received_request(entry, request, now)
                    return out
                if method == "INVITE" and self.answered and request.to.tag is None:
                    until = self.answered.get((request.call_id, request.cseq.seq))
                    if until is not None and now < until:
                        # A retransmission of an INVITE another member forwarded (it died
                        # or was cut off) and whose 2xx went through here: the callee has
                        # answered, so forwarding it again would ring a second time.
                        self.counters["invite_after_2xx_absorbed"] += 1
                        return out
                if (
                    (self.overloaded or not self.accepting)
                    and method != "OPTIONS"
                    and request.to.tag is None
                ):
                    # Shed new work, keep what is under way (calls, dialogs, CANCEL):
                    # a 503 costs a tenth of a proxied INVITE, and Retry-After stops
                    # the caller's retransmissions (RFC 3261 §21.5.4).
                    self.counters["overload_503" if self.overloaded else "not_accepting_503"] += 1
                    self._answer(request, source, 503, None, (("Retry-After", RETRY_AFTER),))
                    return out
                validate_request(request, ("path", "outbound"))
                if method == "REGISTER":
                    self._register(request, source, now)
                elif method == "OPTIONS" and self._for_me(request):
                    if self.ready:  # §11.2: what this member supports
                        self.stateless.counters["options"] += 1
                        self._answer(request, source, 200, "OK", self.stateless.options_headers)
                    else:  # drained: the health probe takes it out of rotation
                        self._answer(request, source, 503, "Not Ready", ())
                else:
                    if method == "BYE" and self.dialogs:  # the dialog ends here
                        self.dialogs.pop(request.call_id, None)
                    self._proxy(request, source, now, acting)
        except SipError as exc:
            self.counters[f"answered_{exc.status}"] += 1
            self._answer(request, source, exc.status, exc.reason, exc.headers)
        except AccountUnreadable:
            # Storage failed us (logged by the directory): a server error, never a 404
            # that tells a phone its account, or a caller the callee, does not exist.
            self.counters["account_unreadable"] += 1
            if method != "ACK":
                self._answer(request, source, 500, "Account Unreadable", UNREADABLE_RETRY_AFTER)
        return out

    def gate(self, data: bytes, source: Source, now: float) -> list[Send] | None:
        """The answer of a new request that carries no credentials, when it is stateless.

        The farm edge asks before relaying a new REGISTER or call to its owner.  A
        challenge (401/407), a refusal of its domain or account (403/404) or of its
        form (400, 416, 420, 483) is the same from every member, nonces being
        farm-wide (:mod:`sipfarm.auth.nonce`), and leaves no state behind, so the
        member the request landed on answers it and saves the relay; its ACK is
        absorbed wherever it lands (``router`` rule 3).  None: the request goes to
        its owner, because it would be registered or proxied (a trusted sender, an
        inbound call), or it is a retransmission of one the owner serves, or this
        member sheds new work (the owner decides then).  Credentials are verified
        only by the owner, whose nonce-count table sees every retry of its requests.
        """
        if self.overloaded or not self.accepting or source.host in self.trusted:
            return None  # a trusted sender is not challenged: the owner serves it
        try:
            msg = parse(data)
        except SipError:
            return None
        if not isinstance(msg, Request) or msg.to.tag is not None:
            return None
        method = msg.method
        if method != "REGISTER" and method not in CHALLENGED:
            return None
        headers = msg.headers
        if headers.has_key("authorization") or headers.has_key("proxy-authorization"):
            return None
        request = msg.with_received(source.host, source.port)
        if method == "OPTIONS" and self._for_me(request):
            return None
        out: list[Send] = []
        self.layer.out = out
        try:
            validate_request(request, ("path", "outbound"))
            if method == "REGISTER":
                passed = self._registrant(request, source, now) is not None
            else:
                passed = self._caller(request, source, now) is not None
        except SipError as exc:
            self.counters[f"answered_{exc.status}"] += 1
            self._answer(request, source, exc.status, exc.reason, exc.headers)
            passed = False
        except AccountUnreadable:
            return None  # the owner reads it, and answers
        return None if passed else out

    def refuse(self, data: bytes, error: SipError, source: Source) -> Outcome:
        """Bytes found broken (by the parser or the edge): answered when possible."""
        action = self.stateless.refuse(data, error, source)
        if isinstance(action, Drop):
            return action
        return [self._send_response(action, source)]

    def advance(self, now: float) -> list[Send]:
        """Fire the timers due by ``now``."""
        out: list[Send] = []
        self.layer.out = out
        self.layer.advance(now)
        return out

    def next_deadline(self) -> float | None:
        return self.layer.next_deadline()

    def transport_failed(self, ref: object, now: float) -> list[Send]:
        """The edge could not send a :class:`Send` whose ``ref`` was a transaction."""
        out: list[Send] = []
        self.layer.out = out
        if isinstance(ref, ServerEntry | ClientEntry):
            self.layer.transport_failed(ref, now)
        return out

    def expire(self, now: float, budget: int = 10_000) -> int:
        """Remove bindings that ran out (the edge calls this every second)."""
        if self.answered:
            for key in [k for k, until in self.answered.items() if until <= now][:budget]:
                del self.answered[key]
        if self.dialogs:
            old = now - DIALOG_LIFETIME
            for call_id in [c for c, at in self.dialogs.items() if at < old][:budget]:
                del self.dialogs[call_id]
        return self.location.expire(now, budget)

    def _dialog(self, response: Response, now: float) -> None:
        """Dialogs through this member (record-routed here): a 2xx to INVITE opens one,
        a BYE through it (or its 2xx) closes it.  A drained member is idle once none
        is left (and no transaction is at work: the BYE's own)."""
        method = response.cseq.method
        if method == "INVITE":
            self.dialogs[response.call_id] = now
        elif method == "BYE":
            self.dialogs.pop(response.call_id, None)

    def stats(self) -> dict[str, int]:
        out = dict(self.stateless.counters)
        out.update(self.counters)
        out.update(self.proxy.counters)
        out["transactions"] = len(self.layer)
        out["transactions_active"] = self.layer.active()
        out["dialogs"] = len(self.dialogs)
        out["bindings"] = len(self.location)
        return out

    # -- the steps ----------------------------------------------------------------------

    def options_to_me(self, data: bytes) -> bool:
        """Whether an OPTIONS Request-URI names this member (host:port), read off the bytes."""
        end = data.find(b" ", 12)
        hostpart = data[12:end]
        hostpart = hostpart[hostpart.rfind(b"@") + 1 :]
        semi = hostpart.find(b";")
        if semi >= 0:
            hostpart = hostpart[:semi]
        return hostpart.lower() in self._own

    def _for_me(self, request: Request) -> bool:
        uri = request.uri
        return (
            isinstance(uri, SipUri)
            and self.me.is_me(uri)
            and not [r for r in request.route if not self.me.is_me(r.uri)]
        )

    def _response(self, response: Response, source: Source, now: float) -> None:
        entry = self.layer.match_client(response)
        if entry is not None:
            first = entry.machine.state.value in ("Calling", "Trying", "Proceeding")
            self.layer.received_response(entry, response, now)
            if (
                first  # not a 2xx retransmission
                and 200 <= response.status < 300
                and (response.via[0].branch or "").startswith(self._branch_prefix)
            ):  # a dialog record-routed in another member's name (Farm._acting) is its
                self._dialog(response, now)
            return
        vias = response.via
        if 200 <= response.status < 300 and len(vias) > 1 and is_farm_branch(vias[0], self.me):
            # §16.7 step 5 / §16.11: a 2xx retransmission after our transaction ended,
            # or the 2xx of another member's INVITE that the router placed here (that
            # member is gone or out of reach: it died with its transaction)
            nxt = vias[1]
            address = response_address(nxt, (nxt.received or nxt.host, nxt.port or 5060))
            self.layer.out.append(Send(bytes(strip_top_via(response)), nxt.transport, address))
            self.counters["2xx_forwarded_stateless"] += 1
            if response.cseq.method == "INVITE":  # the call is answered (see receive)
                self.answered[(response.call_id, response.cseq.seq)] = now + ANSWERED_FOR
            return
        self.counters["stray_response"] += 1

    def _ack(self, ack: Request, source: Source, now: float) -> None:
        entry = self.layer.match_server(ack)
        if entry is not None:
            self.layer.received_request(entry, ack, now)  # the ACK of a non-2xx: absorbed
            return
        if is_stateless_tag(ack.to.tag) and not any(
            isinstance(r.uri, SipUri) and r.uri.params.get("member") is not None for r in ack.route
        ):
            # The ACK of a stateless answer of this member or another (a challenge
            # answered where the request landed, ownership.stateless_tag); an ACK on
            # the farm's route set is a 2xx's, whatever its To-tag looks like.
            self.counters["ack_absorbed"] += 1
            return
        reject = self.proxy.process(ack, source, now, may_relay=source.host in self.trusted)
        if reject is not None:
            self.counters["ack_absorbed"] += 1

    def _cancel(self, cancel: Request, source: Source, now: float) -> None:
        layer = self.layer
        own = layer.match_server(cancel)
        if own is not None:  # a retransmission of a CANCEL we answered
            layer.received_request(own, cancel, now)
            return
        invite = layer.servers.get(cancel_target_key(cancel))
        if invite is None:
            self.counters["answered_481"] += 1
            self._answer(cancel, source, 481, None, ())
            return
        self.proxy.cancel(invite, cancel, source, now)

    def _register(self, request: Request, source: Source, now: float) -> None:
        """RFC 3261 §10.3 steps 1-5 here (:meth:`_registrant`); steps 6-8 are the registrar's."""
        aor = self._registrant(request, source, now)
        if aor is None:
            return
        response = self.registrar.register(
            request, aor, source, now, to_tag=self.stateless.to_tag(request)
        )
        self.counters[f"register_{response.status}"] += 1
        self.layer.out.append(self._to_source(bytes(response), request, source))

    def _registrant(self, request: Request, source: Source, now: float) -> str | None:
        """The AOR a REGISTER may update, or None when it was answered (400/403/404/401)."""
        to = request.to.uri
        if not isinstance(to, SipUri) or not to.user:
            self._answer(request, source, 400, "To is not a SIP AOR", ())
            return None
        domain = to.host.lower()
        uri = request.uri
        if not self.directory.has_domain(domain) or not (
            isinstance(uri, SipUri) and (uri.host.lower() == domain or self.me.is_me(uri))
        ):
            self._answer(request, source, 403, "Domain Not Served", ())
            return None
        account = self.directory.account(to.user, domain)
        if account is None:
            self._answer(request, source, 404, None, ())
            return None
        if source.host not in self.trusted and not self._authenticated(
            request, source, account, now, proxy=False
        ):
            return None
        return aor_of(to)

    def _authenticated(
        self, request: Request, source: Source, account: AccountRecord, now: float, *, proxy: bool
    ) -> bool:
        """Digest (RFC 3261 §22); answers 401/407/403/400 itself and returns False when not."""
        directory = self.directory
        domain = account.domain

        def ha1_of(username: str, algorithm: str) -> str | None:
            rec = account if username == account.user else directory.account(username, domain)
            return None if rec is None else rec.ha1.get(algorithm)

        result = self.auth.verify(request, account.realm, now, ha1_of, proxy=proxy)
        verdict = result.verdict
        if verdict is Verdict.ACCEPT:
            if result.username == account.user:
                return True
            self._answer(request, source, 403, "Username Does Not Match", ())
        elif verdict is Verdict.CHALLENGE or verdict is Verdict.STALE:
            name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
            challenges = self.auth.challenge(account.realm, now, stale=verdict is Verdict.STALE)
            self.counters["challenged"] += 1
            self._answer(
                request, source, 407 if proxy else 401, None, tuple((name, c) for c in challenges)
            )
        elif verdict is Verdict.FORBIDDEN:
            self.counters["auth_forbidden"] += 1
            self._answer(request, source, 403, "Wrong Credentials", ())
        else:
            self._answer(request, source, 400, result.reason or None, ())
        return False

    def _proxy(
        self, request: Request, source: Source, now: float, acting: str | None = None
    ) -> None:
        may_relay = self._caller(request, source, now)
        if may_relay is None:
            return
        reject = self.proxy.process(request, source, now, may_relay=may_relay, acting=acting)
        if reject is not None and reject.status:
            self.counters[f"answered_{reject.status}"] += 1
            self._answer(request, source, reject.status, reject.reason, reject.headers)

    def _caller(self, request: Request, source: Source, now: float) -> bool | None:
        """Whether a request to proxy may go outside the served domains (a trusted or
        authenticated sender); None when it was answered (403, or the 407 challenge)."""
        if source.host in self.trusted:
            return True
        if request.to.tag is not None or request.method not in CHALLENGED:
            return False
        caller = request.from_.uri
        if not (
            isinstance(caller, SipUri) and caller.user and self.directory.has_domain(caller.host)
        ):
            return False  # an inbound call: not challenged
        account = self.directory.account(caller.user, caller.host.lower())
        if account is None:
            self._answer(request, source, 403, "Unknown Caller", ())
            return None
        if not self._authenticated(request, source, account, now, proxy=True):
            return None
        return True

    # -- sending ------------------------------------------------------------------------

    def _answer(
        self,
        request: Request,
        source: Source,
        status: int,
        reason: str | None,
        headers: tuple[tuple[str, str], ...],
    ) -> None:
        """A stateless answer (§8.2.6): the To-tag is a function of the request."""
        data = self.stateless.answer(request, status, reason, headers)
        self.layer.out.append(self._to_source(data, request, source))

    def _to_source(self, data: bytes, request: Request, source: Source) -> Send:
        return Send(data, source.transport, answer_address(request, source))

    def _send_response(self, action: SendResponse, source: Source) -> Send:
        if source.transport == "UDP":
            return Send(action.data, "UDP", action.address)
        return Send(action.data, source.transport, (source.host, source.port))
